//! Unit tests of the HF-compatible environment.

use super::*;

fn render(src: &str, messages: &[ChatMessage]) -> Result<String, ChatError> {
    ChatTemplate::new(src)?.render(messages, true, "<s>", "</s>")
}

#[test]
fn raise_exception_carries_message() {
    let err = render("{{ raise_exception('No system role!') }}", &[]).unwrap_err();
    assert_eq!(
        err,
        ChatError::Raised {
            message: "No system role!".into()
        }
    );
    assert!(err.to_string().contains("No system role!"));
}

#[test]
fn syntax_errors_are_reported() {
    let err = ChatTemplate::new("{% for m in messages %}").unwrap_err();
    assert!(matches!(err, ChatError::Syntax(_)), "{err:?}");
}

#[test]
fn python_string_methods() {
    let out = render(
        "{{ '  a b  '.strip() }}|{{ 'x\\ny'.split('\\n')[-1] }}|{{ 'abc'.startswith('ab') }}|{{ '\\n\\nq'.lstrip('\\n') }}|{{ 'a/think'.replace('/think', '') }}",
        &[],
    )
    .unwrap();
    assert_eq!(out, "a b|y|True|q|a");
}

#[test]
fn trim_and_lstrip_blocks() {
    let src = "{% for m in messages %}\n    {% if m.role == 'user' %}\n{{ m.content }}\n    {% endif %}\n{% endfor %}\n";
    let out = render(src, &[ChatMessage::user("a"), ChatMessage::user("b")]).unwrap();
    assert_eq!(out, "a\nb\n");
}

#[test]
fn loop_controls_and_namespace() {
    let src = "{% set ns = namespace(n=0) %}{% for m in messages %}{% if loop.index0 == 2 %}{% break %}{% endif %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}{{ messages[::-1][0].content }}";
    let msgs: Vec<_> = (0..4).map(|i| ChatMessage::user(i.to_string())).collect();
    assert_eq!(render(src, &msgs).unwrap(), "23");
}

#[test]
fn tojson_matches_transformers() {
    let t = ChatTemplate::new("{{ x | tojson }}|{{ x | tojson(indent=2) }}|{{ 'é<' | tojson }}")
        .unwrap();
    let x = TemplateValue::from_pairs([
        ("name", TemplateValue::from("f")),
        ("n", TemplateValue::from(1.5)),
    ]);
    let out = t.render_with_vars(&[], false, "", "", &[("x", x)]).unwrap();
    assert_eq!(
        out,
        "{\"name\": \"f\", \"n\": 1.5}|{\n  \"name\": \"f\",\n  \"n\": 1.5\n}|\"é<\""
    );
}

#[test]
fn strftime_now_follows_the_clock() {
    let src = "{{ strftime_now('%d %b %Y') }}";
    let t = ChatTemplate::new(src)
        .unwrap()
        .with_clock(Clock::Fixed(1_721_999_109));
    assert_eq!(t.render(&[], false, "", "").unwrap(), "26 Jul 2024");
    let t = t.with_clock(Clock::Text("today".into()));
    assert_eq!(t.render(&[], false, "", "").unwrap(), "today");
    let now = ChatTemplate::new(src)
        .unwrap()
        .render(&[], false, "", "")
        .unwrap();
    assert_eq!(now.len(), 11, "{now}");
}

#[test]
fn extra_vars_override_standard_ones() {
    let t = ChatTemplate::new("{{ bos_token }}{{ enable_thinking }}").unwrap();
    let out = t
        .render_with_vars(
            &[],
            false,
            "<s>",
            "",
            &[("bos_token", "B".into()), ("enable_thinking", false.into())],
        )
        .unwrap();
    assert_eq!(out, "BFalse", "booleans print as Python does");
}

#[test]
fn runaway_templates_are_stopped() {
    let src = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    let err = render(src, &[]).unwrap_err();
    assert!(matches!(err, ChatError::Render(_)), "{err:?}");
}

#[test]
fn builtin_templates() {
    let msgs = [
        ChatMessage::system("Be brief."),
        ChatMessage::user(" Hi "),
        ChatMessage::assistant("Hello."),
        ChatMessage::user("Bye"),
    ];
    let chatml = ChatTemplate::builtin(BuiltinTemplate::ChatMl);
    assert_eq!(
        chatml.render(&msgs[1..2], true, "<s>", "</s>").unwrap(),
        "<|im_start|>user\n Hi <|im_end|>\n<|im_start|>assistant\n"
    );
    let gemma = ChatTemplate::builtin(BuiltinTemplate::Gemma);
    assert_eq!(
        gemma.render(&msgs, true, "<bos>", "<eos>").unwrap(),
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n\
         <start_of_turn>model\nHello.<end_of_turn>\n\
         <start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    );
    for b in BuiltinTemplate::ALL {
        assert_eq!(BuiltinTemplate::from_name(b.name()), Some(b));
    }
}

#[test]
fn generation_blocks_render_their_body() {
    let src = "{% for m in messages %}\n{%- if m.role == 'assistant' %}\n{% generation %}\n{{ m.content }}\n{%- endgeneration %}\n{% endif %}\n{% endfor %}";
    let out = render(src, &[ChatMessage::user("u"), ChatMessage::assistant("a")]).unwrap();
    assert_eq!(out, "a");
    assert_eq!(
        rewrite_generation_tags("{%- generation -%}x{%+endgeneration%}{% generations %}"),
        "{%- if true -%}x{%+ endif %}{% generations %}"
    );
}

#[test]
fn messages_can_be_replaced_by_richer_values() {
    let t = ChatTemplate::new(
        "{% for m in messages %}{{ m.role }}:{{ m.tool_calls[0].function.name }}{% endfor %}",
    )
    .unwrap();
    let call = TemplateValue::from_pairs([(
        "function",
        TemplateValue::from_pairs([("name", "get_time")]),
    )]);
    let msg = TemplateValue::from_pairs([
        ("role", TemplateValue::from("assistant")),
        ("tool_calls", TemplateValue::from(vec![call])),
    ]);
    let out = t
        .render_with_vars(
            &[],
            false,
            "",
            "",
            &[("messages", TemplateValue::from(vec![msg]))],
        )
        .unwrap();
    assert_eq!(out, "assistant:get_time");
}

#[test]
fn templates_come_from_gguf_metadata() {
    use nanorun_formats::{GgufWriter, MetadataValue};
    let gguf = |f: &dyn Fn(&mut GgufWriter)| {
        let mut w = GgufWriter::new();
        w.set_str("general.architecture", "llama");
        f(&mut w);
        let mut bytes = Vec::new();
        w.write_to(&mut bytes).unwrap();
        nanorun_formats::Gguf::from_bytes(bytes).unwrap()
    };
    let g = gguf(&|w| {
        w.set_str(
            GGUF_TEMPLATE_KEY,
            "{{ bos_token }}{{ messages[0].content }}",
        );
        w.set_str("tokenizer.chat_template.tool_use", "tools");
    });
    let t = ChatTemplate::from_gguf(&g, None).unwrap().unwrap();
    assert_eq!(
        t.render(&[ChatMessage::user("x")], false, "<s>", "")
            .unwrap(),
        "<s>x"
    );
    let t = ChatTemplate::from_gguf(&g, Some("tool_use"))
        .unwrap()
        .unwrap();
    assert_eq!(t.source(), "tools");
    assert!(ChatTemplate::from_gguf(&g, Some("rag")).unwrap().is_none());
    let none = gguf(&|_| {});
    assert!(ChatTemplate::from_gguf(&none, None).unwrap().is_none());
    let wrong = gguf(&|w| w.set(GGUF_TEMPLATE_KEY, MetadataValue::U32(3)));
    let err = ChatTemplate::from_gguf(&wrong, None).unwrap_err();
    assert!(err.to_string().contains(GGUF_TEMPLATE_KEY), "{err}");
}
