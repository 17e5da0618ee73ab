//! Chat templates from the GGUF (`tokenizer.chat_template`), rendered with minijinja.
