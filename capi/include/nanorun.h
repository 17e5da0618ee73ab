/* nanorun C API: load a GGUF model once, run many generation requests concurrently (or embed
 * texts with an embedding model).
 *
 * Every function is safe to call from any thread. A request is pulled from one thread at a
 * time. Strings returned by the library stay valid until the next call on the same object
 * (for nanorun_last_error: until the next failing call on the same thread).
 * Link with -lnanorun_capi (and, for the static library, -lpthread -ldl -lm).
 */
#ifndef NANORUN_H
#define NANORUN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nanorun_engine nanorun_engine;
typedef struct nanorun_request nanorun_request;

/* How the engine is set up; 0 fields take the defaults. */
typedef struct nanorun_engine_params {
    int32_t n_threads;   /* forward-pass threads (0: all cores) */
    int32_t n_ctx;       /* KV cache tokens shared by all requests (0: 8192) */
    int32_t max_seqs;    /* requests decoded at once (0: 8) */
} nanorun_engine_params;

/* One request's generation settings; fill with nanorun_request_params_default first. */
typedef struct nanorun_request_params {
    int32_t max_tokens;  /* tokens to generate at most */
    float temperature;   /* 0: greedy */
    int32_t top_k;       /* 0: off */
    float top_p;         /* 1: off */
    float min_p;         /* 0: off */
    float repeat_penalty;/* 1: off */
    int32_t has_seed;    /* non-zero: use seed */
    uint64_t seed;
    int32_t ignore_eos;  /* non-zero: keep going past end-of-generation tokens */
} nanorun_request_params;

/* What nanorun_next returns. */
#define NANORUN_TOKEN 1     /* a token (and maybe text) arrived */
#define NANORUN_DONE 0      /* the request ended: see nanorun_finish_reason */
#define NANORUN_ERROR (-1)  /* see nanorun_last_error */

/* The message of the last failed call on this thread ("" if none). */
const char *nanorun_last_error(void);

/* Loads a model; NULL on error. params may be NULL. */
nanorun_engine *nanorun_engine_load(const char *path, const nanorun_engine_params *params);
/* Stops the engine and frees it (requests still open must be freed first or after: both work). */
void nanorun_engine_free(nanorun_engine *engine);

/* Default request settings (llama.cpp's sampling defaults, 64 tokens). */
void nanorun_request_params_default(nanorun_request_params *params);

/* Submits a text prompt (BOS added when the model wants one). NULL on a bad request. */
nanorun_request *nanorun_submit(nanorun_engine *engine, const char *prompt,
                                const nanorun_request_params *params);
/* Submits token ids. NULL on a bad request. */
nanorun_request *nanorun_submit_tokens(nanorun_engine *engine, const int32_t *tokens,
                                       size_t n_tokens, const nanorun_request_params *params);

/* Embedding engines (a bert, nomic-bert or gemma-embedding GGUF; submitting to one fails).
 * Width of the vectors nanorun_embed writes; 0 for a generation engine. */
int32_t nanorun_embed_dim(const nanorun_engine *engine);
/* Embeds n_texts texts into out (n_texts rows of nanorun_embed_dim floats), L2-normalised if
 * normalize is non-zero. Concurrent calls share forward passes. Returns the input tokens, or
 * -1 on error (nanorun_last_error; e.g. a generation engine). */
int32_t nanorun_embed(nanorun_engine *engine, const char *const *texts, size_t n_texts,
                      int32_t normalize, float *out);

/* Waits for the next token. On NANORUN_TOKEN, *token (if not NULL) is its id (-1 for text
 * released at the end without a token) and *text (if not NULL) the new text, possibly "". */
int32_t nanorun_next(nanorun_request *request, int32_t *token, const char **text);

/* Why the request ended ("stop", "length", "context_full", "cancelled"), or "" before. */
const char *nanorun_finish_reason(const nanorun_request *request);
/* Token counts (valid once nanorun_next returned NANORUN_DONE). */
void nanorun_usage(const nanorun_request *request, int32_t *prompt_tokens,
                   int32_t *completion_tokens);
/* Cancels the request (its next nanorun_next returns NANORUN_DONE, reason "cancelled"). */
void nanorun_cancel(nanorun_request *request);
/* Frees the request, cancelling it if it is still running. */
void nanorun_request_free(nanorun_request *request);

#ifdef __cplusplus
}
#endif

#endif /* NANORUN_H */
