//! Renders the real chat templates in `tests/data/templates` and compares every result with
//! the reference rendering made by Python's Jinja2 the way Hugging Face `transformers` renders
//! (see that folder's README.md and `render_settings` in expected.json).

use std::path::PathBuf;

use nanorun::chat::{ChatError, ChatMessage, ChatTemplate, Clock, TemplateValue};
use serde_json::Value as Json;

/// The reference renderings fixed `strftime_now` and `date_string` to this text.
const FIXED_DATE: &str = "26 Jul 2024";

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/templates")
}

fn load_cases() -> Vec<Json> {
    let path = data_dir().join("expected.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let json: Json = serde_json::from_str(&text).expect("expected.json parses");
    json["cases"].as_array().expect("`cases` is a list").clone()
}

fn render_case(case: &Json) -> Result<String, ChatError> {
    let name = case["template"].as_str().expect("template name");
    let source = std::fs::read_to_string(data_dir().join(name)).expect("template file");
    let template = ChatTemplate::new(&source)?.with_clock(Clock::Text(FIXED_DATE.into()));
    let messages: Vec<ChatMessage> = case["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            ChatMessage::new(
                m["role"].as_str().expect("role"),
                m["content"].as_str().expect("content"),
            )
        })
        .collect();
    template.render_with_vars(
        &messages,
        case["add_generation_prompt"]
            .as_bool()
            .expect("add_generation_prompt"),
        case["bos_token"].as_str().expect("bos_token"),
        case["eos_token"].as_str().expect("eos_token"),
        &[("date_string", TemplateValue::from(FIXED_DATE))],
    )
}

#[test]
fn every_reference_rendering_is_reproduced() {
    let cases = load_cases();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut failures = Vec::new();
    let (mut ok, mut errors) = (0, 0);
    for (i, case) in cases.iter().enumerate() {
        let name = case["template"].as_str().unwrap_or("?");
        let result = render_case(case);
        if let Some(expected) = case.get("expected").and_then(Json::as_str) {
            match result {
                Ok(out) if out == expected => ok += 1,
                Ok(out) => failures.push(format!(
                    "case {i} ({name}): rendering differs\n--- expected\n{expected:?}\n--- got\n{out:?}"
                )),
                Err(e) => failures.push(format!("case {i} ({name}): unexpected error: {e}")),
            }
        } else if let Some(message) = case.get("expected_error").and_then(Json::as_str) {
            match result {
                Err(ChatError::Raised { message: got }) if got == message => {
                    errors += 1;
                    let shown = ChatError::Raised { message: got }.to_string();
                    assert!(shown.contains(message), "{shown}");
                }
                other => failures.push(format!(
                    "case {i} ({name}): expected the error {message:?}, got {other:?}"
                )),
            }
        } else {
            failures.push(format!(
                "case {i} ({name}): neither expected nor expected_error"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!("{ok} renderings and {errors} errors reproduced");
}

#[test]
fn every_template_file_compiles() {
    let mut n = 0;
    for entry in std::fs::read_dir(data_dir()).expect("templates dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) == Some("jinja") {
            let source = std::fs::read_to_string(&path).expect("template file");
            ChatTemplate::new(&source).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 9, "only {n} templates");
}
