/* Generates from a prompt through the nanorun C API, streaming the text to stdout.
 * Usage: generate MODEL.gguf PROMPT [MAX_TOKENS] */
#include <stdio.h>
#include <stdlib.h>

#include "nanorun.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT [MAX_TOKENS]\n", argv[0]);
        return 2;
    }
    nanorun_engine_params ep = {0};
    ep.n_threads = 2;
    nanorun_engine *engine = nanorun_engine_load(argv[1], &ep);
    if (!engine) {
        fprintf(stderr, "load failed: %s\n", nanorun_last_error());
        return 1;
    }
    nanorun_request_params rp;
    nanorun_request_params_default(&rp);
    rp.max_tokens = argc > 3 ? atoi(argv[3]) : 16;
    rp.temperature = 0.0f; /* greedy */
    rp.ignore_eos = 1;

    /* A bad request is refused with a reason, and the engine keeps serving. */
    nanorun_request_params bad = rp;
    bad.top_p = 0.0f;
    if (nanorun_submit(engine, "x", &bad) != NULL) {
        fprintf(stderr, "a bad request was accepted\n");
        return 1;
    }
    fprintf(stderr, "refused as expected: %s\n", nanorun_last_error());

    nanorun_request *req = nanorun_submit(engine, argv[2], &rp);
    if (!req) {
        fprintf(stderr, "submit failed: %s\n", nanorun_last_error());
        return 1;
    }
    int32_t token, n = 0;
    const char *text;
    int32_t rc;
    while ((rc = nanorun_next(req, &token, &text)) == NANORUN_TOKEN) {
        fputs(text, stdout);
        n += token >= 0;
    }
    if (rc == NANORUN_ERROR) {
        fprintf(stderr, "generation failed: %s\n", nanorun_last_error());
        return 1;
    }
    int32_t prompt_tokens, completion_tokens;
    nanorun_usage(req, &prompt_tokens, &completion_tokens);
    printf("\n[finish=%s prompt_tokens=%d completion_tokens=%d tokens_seen=%d]\n",
           nanorun_finish_reason(req), prompt_tokens, completion_tokens, n);
    nanorun_request_free(req);
    nanorun_engine_free(engine);
    return completion_tokens == n ? 0 : 1;
}
