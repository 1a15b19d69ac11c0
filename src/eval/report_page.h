/* report_page.h — the HTML page both reports write (the model report,
 * report.c, and the data-only report, report_eda.c): the output folder, the
 * page body gathered in memory section by section, figures and notes in it,
 * progress lines, and index.html written atomically at the end with one
 * shared style sheet. Internal to src/eval.
 *
 * Leaves out on purpose: templates — each section prints its own HTML.
 */
#ifndef DG_REPORT_PAGE_H
#define DG_REPORT_PAGE_H

#include <stdio.h>

#include "eval/report.h"

typedef struct {
    const ReportConfig *cfg;
    FILE *body;          /* the page's body, a memory stream */
    char *body_buf;
    size_t body_len;
    double t0;
} Rep;

/* Creates cfg->out_dir (mkdir -p) and the body stream. -1 with a message. */
int rep_open(Rep *r, const ReportConfig *cfg);
/* Frees what rep_open made (safe after rep_finish or a failure). */
void rep_close(Rep *r);
/* One link of the page's section bar: <a href="#id">label</a>. */
typedef struct {
    const char *id, *label;
} RepLink;

/* Writes <out>/index.html: the head (title escaped), one paragraph of
 * `intro_html` (as given) followed by "; written DATE in N s by
 * <code>command</code>.", the section bar of `nav` (ended by {NULL}), then
 * the body. -1 with a message. */
int rep_finish(Rep *r, const char *title, const char *intro_html, const char *command, const RepLink *nav);

/* s with < > & " escaped onto f. */
void rep_esc(FILE *f, const char *s);
/* "[  12.3s] message" on stdout unless cfg->quiet. */
void rep_progress(const Rep *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* out = "<out_dir>/<name>". */
void rep_path(const Rep *r, const char *name, char *out, size_t len);
/* A <figure> for name.png (and its SVG) with a caption (HTML allowed). */
void rep_figure(Rep *r, const char *name, const char *alt, const char *caption);
/* A highlighted paragraph, text escaped. */
void rep_note(Rep *r, const char *text);

#endif
