/* report_page.c — the reports' HTML page; see report_page.h.
 *
 * The body is written into a memory stream while the pictures are drawn (so
 * each section sits next to what made it) and lands on disk at the end in
 * one atomic write, so a failed report never leaves a half page behind.
 */
#include "eval/report_page.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/check.h"
#include "core/util.h"

static const char *CSS =
    "body{font-family:'DejaVu Sans',sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222}"
    "h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}"
    "pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em}"
    "table{border-collapse:collapse;margin:.6em 0}th,td{padding:.2em .7em;border-bottom:1px solid #e4e4e4;"
    "text-align:right;font-variant-numeric:tabular-nums}table.kv th{text-align:left}table.kv td{text-align:left}"
    "figure{margin:1.2em 0}img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9em}"
    ".note{background:#fff7e0;border-left:4px solid #e0b000;padding:.5em .8em}nav a{margin-right:1em}"
    "td.bad{color:#b00}";

void rep_esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

void rep_progress(const Rep *r, const char *fmt, ...) {
    if (r->cfg->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    printf("[%6.1fs] ", now_seconds() - r->t0);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

void rep_path(const Rep *r, const char *name, char *out, size_t len) {
    snprintf(out, len, "%s/%s", r->cfg->out_dir, name);
}

void rep_figure(Rep *r, const char *name, const char *alt, const char *caption) {
    FILE *f = r->body;
    fprintf(f, "<figure><a href=\"%s.png\"><img src=\"%s.png\" alt=\"", name, name);
    rep_esc(f, alt);
    fprintf(f, "\"></a><figcaption>%s", caption ? caption : "");
    if (r->cfg->svg) fprintf(f, " <a href=\"%s.svg\">SVG</a>", name);
    fprintf(f, "</figcaption></figure>\n");
}

void rep_note(Rep *r, const char *text) {
    fprintf(r->body, "<p class=\"note\">");
    rep_esc(r->body, text);
    fprintf(r->body, "</p>\n");
}

int rep_open(Rep *r, const ReportConfig *cfg) {
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->t0 = now_seconds();
    if (make_dirs(cfg->out_dir) < 0) return -1;
    r->body = open_memstream(&r->body_buf, &r->body_len);
    if (!r->body) return dg_set_error("report: out of memory");
    return 0;
}

void rep_close(Rep *r) {
    if (r->body) fclose(r->body);
    r->body = NULL;
    free(r->body_buf);
    r->body_buf = NULL;
}

/* The page's first paragraph: what was reported on, when and how long it took. */
static void write_intro(const Rep *r, FILE *o, const char *intro_html, const char *command) {
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime(&now));
    fprintf(o, "<p>%s; written %s in %.0f s by <code>", intro_html, when, now_seconds() - r->t0);
    rep_esc(o, command);
    fprintf(o, "</code>.</p>\n");
}

/* The bar of links to the page's sections. */
static void write_nav(FILE *o, const RepLink *nav) {
    fprintf(o, "<nav>");
    for (const RepLink *l = nav; l->id; l++) fprintf(o, "<a href=\"#%s\">%s</a>", l->id, l->label);
    fprintf(o, "</nav>\n");
}

int rep_finish(Rep *r, const char *title, const char *intro_html, const char *command, const RepLink *nav) {
    if (fclose(r->body) != 0) {
        r->body = NULL;
        return dg_set_error("report: out of memory");
    }
    r->body = NULL;
    char path[PATH_MAX];
    rep_path(r, "index.html", path, sizeof path);
    AtomicFile af;
    if (atomic_file_open(&af, path) < 0) return -1;
    FILE *o = af.f;
    fprintf(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>");
    rep_esc(o, title);
    fprintf(o, "</title>\n<style>%s</style></head><body>\n<h1>", CSS);
    rep_esc(o, title);
    fprintf(o, "</h1>\n");
    write_intro(r, o, intro_html, command);
    write_nav(o, nav);
    int ok = fwrite(r->body_buf, 1, r->body_len, o) == r->body_len && fputs("</body></html>\n", o) >= 0;
    if (!ok) {
        atomic_file_abort(&af);
        return dg_set_error("%s: write failed", path);
    }
    if (atomic_file_commit(&af) < 0) return -1;
    rep_progress(r, "wrote %s", path);
    return 0;
}
