//! Tokenizers byte-exact with llama.cpp: SentencePiece-style (`llama`), BPE (`gpt2`), WordPiece (`bert`).
