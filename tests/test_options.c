/* test_options.c — the option table of `digits train` (src/train/options.c):
 * its rows agree with the enums they index and read their own defaults;
 * "did you mean"; the checkpoint JSON brings every setting back bit-exact
 * and old checkpoints' keys (RunFlags' digits.run, "" for no test) still
 * read; the model metadata keeps the keys readers use; YAML from memory:
 * the print/read round trip, seed 004's sections, the error messages. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "digits_internal.h"
#include "testutil.h"
#include "train/options.h"

/* Choices are enum values in table order: the names must be the enums' own. */
static void test_choices_match_enums(void **state) {
    (void)state;
    TrainOptions o;
    train_options_defaults(&o);
    char why[200];
    for (int k = OPTIM_SGD; k <= OPTIM_ADAMW; k++) {
        assert_int_equal(train_option_set(&o, train_option_find("optimizer"), optim_name((OptimType)k), why, sizeof why), 0);
        assert_int_equal((int)o.cfg.optim, k);
    }
    for (int k = SCHED_CONSTANT; k <= SCHED_COSINE; k++) {
        assert_int_equal(train_option_set(&o, train_option_find("schedule"), sched_name((SchedType)k), why, sizeof why), 0);
        assert_int_equal((int)o.cfg.schedule, k);
    }
    assert_int_equal(train_option_set(&o, train_option_find("normalize"), "none", why, sizeof why), 0);
    assert_int_equal(o.cfg.unit_scale, 1);
    assert_int_equal(train_option_set(&o, train_option_find("normalize"), "signed", why, sizeof why), 0);
    assert_int_equal(o.cfg.unit_scale, 2);
    { /* signed: pixels/255 mapped to [-1,1] whatever the data, as Normalize((0.5,), (0.5,)) */
        Model m;
        memset(&m, 0, sizeof m);
        train_set_normalisation(&m, &o.cfg, NULL);
        assert_true(m.norm_mean == 0.5f && m.norm_std == 0.5f);
    }
    assert_int_equal(train_option_set(&o, train_option_find("vote"), "logits", why, sizeof why), 0);
    assert_int_equal(o.vote_logits, 1);
    assert_int_equal(train_option_set(&o, train_option_find("dtype"), "bf16", why, sizeof why), 0);
    assert_int_equal(o.cfg.dtype, 1);
    train_options_free(&o);
}

/* Defaults equal train_config_defaults'; names unique; lookups by either spelling. */
static void test_defaults_and_names(void **state) {
    (void)state;
    TrainOptions o;
    train_options_defaults(&o);
    TrainConfig c;
    train_config_defaults(&c);
    assert_int_equal(o.cfg.epochs, c.epochs);
    assert_int_equal(o.cfg.batch_size, c.batch_size);
    assert_true(o.cfg.lr == c.lr && o.cfg.momentum == c.momentum && o.cfg.seed == c.seed);
    assert_int_equal((int)o.cfg.optim, (int)c.optim);
    assert_int_equal(o.cfg.step_size, c.step_size);
    assert_string_equal(o.model, "cnn-bn");
    assert_null(o.cfg.out_path);
    int n;
    const TrainOption *t = train_options_table(&n);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) assert_true(strcmp(t[i].name, t[j].name) != 0);
    assert_ptr_equal(train_option_find("batch_size"), train_option_find("batch-size"));
    assert_null(train_option_find("batchsize"));
    assert_string_equal(train_option_suggest("epohcs"), "epochs");
    assert_string_equal(train_option_suggest("batchsize"), "batch-size");
    assert_string_equal(train_option_suggest("optimiser"), "optimizer");
    assert_null(train_option_suggest("zzzzzzzz"));
    train_options_free(&o);
}

/* The checkpoint's JSON (exact) brings back every bit. */
static void test_checkpoint_json_exact(void **state) {
    (void)state;
    TrainOptions a, b;
    train_options_defaults(&a);
    a.cfg.lr = 0.1f + 1e-8f;
    a.cfg.gamma = 0.95f;
    a.cfg.ema = 0.999f;
    a.cfg.seed = 0xfedcba9876543210ULL;
    a.cfg.max_steps = 123456789L;
    a.cfg.nesterov = 1;
    a.cfg.dtype = 2;
    char why[64];
    train_option_set(&a, train_option_find("out"), "m \"x\".safetensors", why, sizeof why);
    char *json = train_options_json(&a, OPTF_CKPT, 1);
    train_options_defaults(&b);
    assert_int_equal(train_options_from_json(&b, json, OPTF_CKPT, NULL, 0), 0);
    assert_memory_equal(&a.cfg.lr, &b.cfg.lr, sizeof(float));
    assert_memory_equal(&a.cfg.gamma, &b.cfg.gamma, sizeof(float));
    assert_memory_equal(&a.cfg.ema, &b.cfg.ema, sizeof(float));
    assert_true(b.cfg.seed == a.cfg.seed && b.cfg.max_steps == a.cfg.max_steps);
    assert_int_equal(b.cfg.nesterov, 1);
    assert_int_equal(b.cfg.dtype, 2);
    assert_string_equal(b.cfg.out_path, "m \"x\".safetensors");
    assert_non_null(strstr(json, "\"out_path\":")); /* the checkpoint's own key names */
    assert_non_null(strstr(json, "\"log_path\":null"));
    /* a key this digits does not know, and a value out of range */
    char key[64];
    assert_int_equal(train_options_from_json(&b, "{\"epochs\":3,\"warp\":1}", OPTF_CKPT, key, sizeof key), -1);
    assert_string_equal(key, "warp");
    assert_int_equal(train_options_from_json(&b, "{\"epochs\":0}", OPTF_CKPT, key, sizeof key), -2);
    assert_string_equal(key, "epochs");
    free(json);
    train_options_free(&a);
    train_options_free(&b);
}

/* digits.run as checkpoints written before the table stored it. */
static void test_old_run_json(void **state) {
    (void)state;
    TrainOptions o;
    train_options_defaults(&o);
    const char *old = "{\"model\":\"cnn\",\"data\":\"d/train.csv\",\"test\":\"\",\"val_split\":\"0x1.99999ap-4\","
                      "\"limit\":500,\"augment\":\"\",\"precision\":\"fp32\",\"normalize\":\"none\",\"ensemble\":3,"
                      "\"ensemble_models\":\"\",\"kfold\":0,\"vote\":\"logits\"}";
    assert_int_equal(train_options_from_json(&o, old, OPTF_RUN, NULL, 0), 0);
    assert_string_equal(o.model, "cnn");
    assert_string_equal(o.data, "d/train.csv");
    assert_null(o.test);
    assert_null(o.augment);
    assert_true(o.val_split == 0.1f);
    assert_int_equal(o.limit, 500);
    assert_int_equal(o.cfg.unit_scale, 1);
    assert_int_equal(o.ensemble, 3);
    assert_int_equal(o.vote_logits, 1);
    train_options_free(&o);
}

/* The model metadata keeps the keys its readers use (report: "log"). */
static void test_metadata_keys(void **state) {
    (void)state;
    TrainConfig c;
    train_config_defaults(&c);
    c.log_path = "runs/x.csv";
    char *json = train_config_json(&c, "cnn-bn", 900, 100);
    assert_non_null(strstr(json, "\"model\":\"cnn-bn\""));
    assert_non_null(strstr(json, "\"epochs\":10"));
    assert_non_null(strstr(json, "\"batch_size\":64"));
    assert_non_null(strstr(json, "\"lr\":0.001,"));
    assert_non_null(strstr(json, "\"optimizer\":\"adam\""));
    assert_non_null(strstr(json, "\"log\":\"runs/x.csv\""));
    assert_non_null(strstr(json, "\"normalize\":\"standard\""));
    assert_non_null(strstr(json, "\"n_train\":900"));
    assert_null(strstr(json, "augment")); /* unset: absent */
    free(json);
}

static int parse(TrainOptions *o, const char *text) {
    train_options_defaults(o);
    return train_options_parse_yaml(o, "t.yaml", (const unsigned char *)text, strlen(text));
}

/* Printed settings read back to the same print. */
static void test_yaml_round_trip(void **state) {
    (void)state;
    TrainOptions o;
    assert_int_equal(parse(&o, "model: lenet5\nlr: 3e-4\nnesterov: yes\nout: 'a \"b\" \\\\c'\naugment: rotate=10\n"), 0);
    assert_string_equal(o.out_dir, "runs");
    assert_string_equal(o.cfg.out_path, "a \"b\" \\\\c");
    char *p1 = NULL, *p2 = NULL;
    size_t n1, n2;
    FILE *f = open_memstream(&p1, &n1);
    train_options_print_yaml(&o, f);
    fclose(f);
    train_options_free(&o);
    assert_int_equal(train_options_parse_yaml((train_options_defaults(&o), &o), "p", (unsigned char *)p1, n1), 0);
    f = open_memstream(&p2, &n2);
    train_options_print_yaml(&o, f);
    fclose(f);
    assert_int_equal(n1, n2);
    assert_memory_equal(p1, p2, n1);
    assert_non_null(strstr(p1, "\nlr: 0.0003\n"));
    assert_non_null(strstr(p1, "\nnesterov: true\n"));
    free(p1);
    free(p2);
    train_options_free(&o);
}

/* Seed 004's sections map onto our keys; the others are listed. */
static void test_yaml_seed004(void **state) {
    (void)state;
    TrainOptions o;
    assert_int_equal(parse(&o, "train_params:\n  epochs: 3\n  learning_rate: 0.01\n  batch_size: 16\n"
                               "dataset_params:\n  root_dir: './data'\nmodels_params:\n  save_path: './models'\n"
                               "test_params:\n  batch_size: 64\n"), 0);
    assert_int_equal(o.cfg.epochs, 3);
    assert_true(o.cfg.lr == 0.01f);
    assert_int_equal(o.cfg.batch_size, 16);
    assert_string_equal(o.data, "./data");
    assert_string_equal(o.out_dir, "./models");
    assert_non_null(strstr(o.notice, "test_params.batch_size"));
    assert_int_equal(o.given[train_option_index(train_option_find("epochs"))], 2);
    assert_int_equal(o.line[train_option_index(train_option_find("epochs"))], 2);
    train_options_free(&o);
}

/* The messages: FILE:LINE, the key, what it must be, the nearest key. */
static void test_yaml_errors(void **state) {
    (void)state;
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"epohcs: 3\n", "t.yaml:1: unknown key 'epohcs' (did you mean 'epochs'?)"},
        {"model: x\nepochs: 0\n", "t.yaml:2: 'epochs' must be an integer ≥ 1"},
        {"epochs: 2.5\n", "t.yaml:1: 'epochs' must be an integer ≥ 1"},
        {"batch-size: 70000\n", "t.yaml:1: 'batch-size' must be an integer in 1..65536"},
        {"val-split: 0.95\n", "t.yaml:1: 'val-split' must be a number in 0..0.9"},
        {"nesterov: maybe\n", "t.yaml:1: 'nesterov' must be true or false"},
        {"epochs:\n", "t.yaml:1: 'epochs' needs a value"},
        {"resume: ck\n", "t.yaml:1: 'resume' is a command-line flag, not a config key"},
        {"model: \"a\\nb\"\n", "t.yaml:1: 'model' holds a control character or line break"},
        {"epochs: 1\n---\nepochs: 2\n", "t.yaml:2: one YAML document only"},
        {"- 1\n", "t.yaml:1: expected 'key: value' lines, not a list"},
        {"a: &x 1\nb: *x\n", "t.yaml:1: unknown key 'a'"},
        {"epochs: \"1\n", "t.yaml:2:1: YAML syntax error: found unexpected end of stream"},
        {"epochs: 1\nlr: 2: 3\n", "t.yaml:2:6: YAML syntax error: mapping values are not allowed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        TrainOptions o;
        int rc = parse(&o, cases[i].text);
        print_message("%-30s -> %s\n", cases[i].text, dg_errmsg());
        assert_int_equal(rc, -1);
        assert_non_null(strstr(dg_errmsg(), cases[i].msg));
        train_options_free(&o);
    }
    TrainOptions o;
    assert_int_equal(parse(&o, ""), 0); /* an empty file: the defaults */
    assert_int_equal(o.cfg.epochs, 10);
    train_options_free(&o);
    assert_int_equal(parse(&o, "# only a comment\n"), 0);
    train_options_free(&o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choices_match_enums),
        cmocka_unit_test(test_defaults_and_names),
        cmocka_unit_test(test_checkpoint_json_exact),
        cmocka_unit_test(test_old_run_json),
        cmocka_unit_test(test_metadata_keys),
        cmocka_unit_test(test_yaml_round_trip),
        cmocka_unit_test(test_yaml_seed004),
        cmocka_unit_test(test_yaml_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
