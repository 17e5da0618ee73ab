// llama.cpp side of the tokenizer differential runs (see README.md next to this file).
//
// usage: llama_tokbatch MODEL.gguf RECORDS ADD PARSE [detok]
//        llama_tokbatch MODEL.gguf - 0 0 pieces
// RECORDS holds texts as (u32 little-endian length, bytes). For each text it prints one line: the
// ids of llama_tokenize(text, add_special = ADD == 1, parse_special = PARSE == 1), then with
// "detok" " |" + hex of llama_detokenize(special = false), " |" + hex of (special = true) and
// " |" + hex of every token's llama_token_to_piece(special = false) followed by ".".
// "pieces" prints every token's piece (special false, then true) as hex, one token a line, then
// "EOG <ids>" and "BOS b EOS e EOT t". nanorun's side prints the same (tokenizer_suites.rs,
// test dump_for_differential_runs).
#include "llama.h"
#include <cstdio>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>
#include <sstream>
#include <cstring>
static void quiet(ggml_log_level, const char *, void *) {}
int main(int argc, char ** argv) {
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    auto mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "load failed\n"); return 1; }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    bool add = std::string(argv[3]) == "1", parse = std::string(argv[4]) == "1";
    if (argc > 5 && std::string(argv[5]) == "pieces") {
        int n = llama_vocab_n_tokens(vocab);
        for (int id = 0; id < n; id++) {
            for (int sp = 0; sp < 2; sp++) {
                char pb[1024];
                int m = llama_token_to_piece(vocab, id, pb, sizeof pb, 0, sp == 1);
                for (int j = 0; j < m; j++) printf("%02x", (unsigned char) pb[j]);
                printf(sp ? "\n" : " ");
            }
        }
        printf("EOG");
        for (int id = 0; id < n; id++) if (llama_vocab_is_eog(vocab, id)) printf(" %d", id);
        printf("\nBOS %d EOS %d EOT %d\n", llama_vocab_bos(vocab), llama_vocab_eos(vocab), llama_vocab_eot(vocab));
        return 0;
    }
    std::ifstream in(argv[2], std::ios::binary);
    std::stringstream ss; ss << in.rdbuf(); std::string data = ss.str();
    size_t off = 0;
    std::vector<llama_token> toks;
    while (off + 4 <= data.size()) {
        uint32_t n; memcpy(&n, data.data() + off, 4); off += 4;
        std::string text = data.substr(off, n); off += n;
        toks.resize(text.size() * 2 + 16);
        int k = llama_tokenize(vocab, text.data(), text.size(), toks.data(), toks.size(), add, parse);
        if (k < 0) { toks.resize(-k); k = llama_tokenize(vocab, text.data(), text.size(), toks.data(), toks.size(), add, parse); }
        for (int i = 0; i < k; i++) printf(i ? " %d" : "%d", toks[i]);
        if (argc > 5) {
            for (int sp = 0; sp < 2; sp++) {
                std::vector<char> buf(text.size() * 8 + 64 + k * 64);
                int m = llama_detokenize(vocab, toks.data(), k, buf.data(), buf.size(), false, sp == 1);
                printf(" |");
                for (int i = 0; i < m; i++) printf("%02x", (unsigned char) buf[i]);
            }
            printf(" |");
            for (int i = 0; i < k; i++) {
                char pb[512];
                int m = llama_token_to_piece(vocab, toks[i], pb, sizeof pb, 0, false);
                for (int j = 0; j < m; j++) printf("%02x", (unsigned char) pb[j]);
                printf(".");
            }
        }
        printf("\n");
    }
    return 0;
}
