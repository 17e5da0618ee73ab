//! The `tojson` filter as Hugging Face `transformers` defines it for chat templates.
//!
//! `transformers` replaces Jinja's HTML-safe `tojson` with a thin wrapper around Python's
//! `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`. Its output
//! differs from minijinja's built-in filter: no HTML escaping, `", "` and `": "` separators in
//! the compact form, `","` after items when indenting, Python's float spelling (`1.0`, `1e+16`),
//! and keys in insertion order. This module reproduces `json.dumps` byte for byte.

use std::fmt::Write as _;

use minijinja::value::{Kwargs, Rest, ValueKind, ValueOrKwargs};
use minijinja::{Error, ErrorKind, Value};

/// Containers nested deeper than this are refused (Python's own limit is about 1000).
const MAX_DEPTH: usize = 512;

/// Options of `json.dumps` that templates may pass.
struct Options {
    ensure_ascii: bool,
    indent: Option<String>,
    item_separator: String,
    key_separator: String,
    sort_keys: bool,
}

/// The `tojson` filter: `value | tojson(ensure_ascii=False, indent=None, separators=None,
/// sort_keys=False)`, positional or by keyword, as in `transformers`.
pub(crate) fn tojson_filter(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let mut positional = Vec::new();
    let mut kwargs = None;
    for arg in args.into_values() {
        if arg.is_kwargs() {
            kwargs = Some(Kwargs::try_from(arg)?);
        } else {
            positional.push(arg);
        }
    }
    if positional.len() > 4 {
        return Err(invalid(format!(
            "tojson: takes at most 4 positional arguments, {} given",
            positional.len()
        )));
    }
    let kwargs = kwargs.unwrap_or_else(|| Kwargs::from_iter(std::iter::empty::<(&str, Value)>()));
    let mut positional = positional.into_iter();
    let (ensure_ascii, indent, separators, sort_keys) = (
        positional.next(),
        positional.next(),
        positional.next(),
        positional.next(),
    );
    let ensure_ascii = pick(ensure_ascii, &kwargs, "ensure_ascii")?;
    let indent = pick(indent, &kwargs, "indent")?;
    let separators = pick(separators, &kwargs, "separators")?;
    let sort_keys = pick(sort_keys, &kwargs, "sort_keys")?;
    kwargs.assert_all_used()?;

    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => Some(indent_string(&v)?),
    };
    let (item_separator, key_separator) = match separators {
        Some(v) if !v.is_none() && !v.is_undefined() => separator_pair(&v)?,
        _ if indent.is_some() => (",".to_string(), ": ".to_string()),
        _ => (", ".to_string(), ": ".to_string()),
    };
    let opts = Options {
        ensure_ascii: ensure_ascii.is_some_and(|v| v.is_true()),
        indent,
        item_separator,
        key_separator,
        sort_keys: sort_keys.is_some_and(|v| v.is_true()),
    };
    let mut out = String::new();
    write_value(&mut out, value, &opts, 0)?;
    Ok(Value::from_safe_string(out))
}

/// Serializes `value` the way `json.dumps(value, ensure_ascii=False)` does.
#[cfg(test)]
pub(crate) fn to_python_json(value: &Value) -> Result<String, Error> {
    let opts = Options {
        ensure_ascii: false,
        indent: None,
        item_separator: ", ".to_string(),
        key_separator: ": ".to_string(),
        sort_keys: false,
    };
    let mut out = String::new();
    write_value(&mut out, value, &opts, 0)?;
    Ok(out)
}

fn pick(positional: Option<Value>, kwargs: &Kwargs, name: &str) -> Result<Option<Value>, Error> {
    let by_name: Option<Value> = kwargs.get(name)?;
    match (positional, by_name) {
        (Some(_), Some(_)) => Err(invalid(format!(
            "tojson: argument `{name}` given both by position and by keyword"
        ))),
        (p, k) => Ok(p.or(k)),
    }
}

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// `indent` as Python takes it: an integer number of spaces or a string used as is.
fn indent_string(v: &Value) -> Result<String, Error> {
    if let Some(s) = v.as_str() {
        return Ok(s.to_string());
    }
    match v.as_i64() {
        // Python: a negative indent is treated as zero (newlines, no spaces).
        Some(n) if v.is_integer() => Ok(" ".repeat(n.clamp(0, 64) as usize)),
        _ => Err(invalid(format!(
            "tojson: `indent` must be an integer or a string, not {}",
            v.kind()
        ))),
    }
}

fn separator_pair(v: &Value) -> Result<(String, String), Error> {
    let bad = || invalid("tojson: `separators` must be a pair of strings".to_string());
    if v.len() != Some(2) {
        return Err(bad());
    }
    let a = v.get_item_by_index(0)?;
    let b = v.get_item_by_index(1)?;
    match (a.as_str(), b.as_str()) {
        (Some(a), Some(b)) => Ok((a.to_string(), b.to_string())),
        _ => Err(bad()),
    }
}

fn write_value(out: &mut String, v: &Value, o: &Options, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(invalid("tojson: value nested too deeply".to_string()));
    }
    match v.kind() {
        ValueKind::Undefined => {
            return Err(invalid(
                "tojson: Object of type Undefined is not JSON serializable".to_string(),
            ))
        }
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => write_number(out, v)?,
        ValueKind::String | ValueKind::Plain => write_str(out, &v.to_string(), o.ensure_ascii),
        ValueKind::Bytes => {
            return Err(invalid(
                "tojson: Object of type bytes is not JSON serializable".to_string(),
            ))
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            write_container(out, '[', ']', items.len(), o, depth, |out, i| {
                write_value(out, &items[i], o, depth + 1)
            })?;
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if o.sort_keys {
                keys.sort_by_key(|k| k.to_string());
            }
            write_container(out, '{', '}', keys.len(), o, depth, |out, i| {
                write_key(out, &keys[i], o)?;
                out.push_str(&o.key_separator);
                write_value(out, &v.get_item(&keys[i])?, o, depth + 1)
            })?;
        }
        ValueKind::Invalid => {
            return Err(invalid("tojson: value is invalid".to_string()));
        }
        // `ValueKind` is non-exhaustive.
        _ => write_str(out, &v.to_string(), o.ensure_ascii),
    }
    Ok(())
}

fn write_container(
    out: &mut String,
    open: char,
    close: char,
    len: usize,
    o: &Options,
    depth: usize,
    mut item: impl FnMut(&mut String, usize) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if len == 0 {
        out.push(close);
        return Ok(());
    }
    for i in 0..len {
        if i > 0 {
            out.push_str(&o.item_separator);
        }
        if let Some(indent) = &o.indent {
            newline(out, indent, depth + 1);
        }
        item(out, i)?;
    }
    if let Some(indent) = &o.indent {
        newline(out, indent, depth);
    }
    out.push(close);
    Ok(())
}

fn newline(out: &mut String, indent: &str, level: usize) {
    out.push('\n');
    for _ in 0..level {
        out.push_str(indent);
    }
}

/// Dictionary keys: Python turns numbers, booleans and None into strings.
fn write_key(out: &mut String, k: &Value, o: &Options) -> Result<(), Error> {
    match k.kind() {
        ValueKind::String => write_str(out, k.as_str().unwrap_or_default(), o.ensure_ascii),
        ValueKind::None => out.push_str("\"null\""),
        ValueKind::Bool => out.push_str(if k.is_true() { "\"true\"" } else { "\"false\"" }),
        ValueKind::Number => {
            let mut s = String::new();
            write_number(&mut s, k)?;
            write_str(out, &s, o.ensure_ascii);
        }
        other => {
            return Err(invalid(format!(
                "tojson: keys must be str, int, float, bool or None, not {other}"
            )))
        }
    }
    Ok(())
}

fn write_number(out: &mut String, v: &Value) -> Result<(), Error> {
    if v.is_integer() {
        // Integers print exactly, whatever their width.
        out.push_str(&v.to_string());
        return Ok(());
    }
    let f = f64::try_from(v.clone())?;
    out.push_str(&python_float_repr(f));
    Ok(())
}

/// Python's `float.__repr__` (as `json.dumps` uses it): shortest round-trip digits, positional
/// for decimal exponents in [-4, 16), scientific (`1e+16`, `1.5e-05`) otherwise.
pub(crate) fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::from(sign);
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(mantissa);
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

fn write_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_spelled_like_python() {
        assert_eq!(python_float_repr(1.0), "1.0");
        assert_eq!(python_float_repr(0.5), "0.5");
        assert_eq!(python_float_repr(123.25), "123.25");
        assert_eq!(python_float_repr(1e16), "1e+16");
        assert_eq!(python_float_repr(1.5e-5), "1.5e-05");
        assert_eq!(python_float_repr(0.0001), "0.0001");
        assert_eq!(python_float_repr(-2.5e20), "-2.5e+20");
        assert_eq!(python_float_repr(1e15), "1000000000000000.0");
        assert_eq!(python_float_repr(0.1), "0.1");
    }

    #[test]
    fn compact_and_indented_layout() {
        let v = Value::from_pairs([
            ("b", Value::from(1)),
            (
                "a",
                Value::from(vec![Value::from("x<y>"), Value::from(2.0)]),
            ),
            ("e", Value::from(Vec::<Value>::new())),
        ]);
        assert_eq!(
            to_python_json(&v).unwrap(),
            r#"{"b": 1, "a": ["x<y>", 2.0], "e": []}"#
        );
        let opts = Options {
            ensure_ascii: false,
            indent: Some("  ".into()),
            item_separator: ",".into(),
            key_separator: ": ".into(),
            sort_keys: true,
        };
        let mut out = String::new();
        write_value(&mut out, &v, &opts, 0).unwrap();
        assert_eq!(
            out,
            "{\n  \"a\": [\n    \"x<y>\",\n    2.0\n  ],\n  \"b\": 1,\n  \"e\": []\n}"
        );
    }

    #[test]
    fn strings_escape_like_python() {
        let mut out = String::new();
        write_str(&mut out, "é\"\\\n\u{1}😀", false);
        assert_eq!(out, "\"é\\\"\\\\\\n\\u0001😀\"");
        out.clear();
        write_str(&mut out, "é😀", true);
        assert_eq!(out, "\"\\u00e9\\ud83d\\ude00\"");
    }
}
