//! `nanorun inspect MODEL [--json]`: architecture, metadata, tensor table, totals by type.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use nanorun::formats::{GgmlType, Gguf, MetadataArray, MetadataValue};
use serde_json::{json, Value};

/// Arguments of `nanorun inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The GGUF file.
    model: PathBuf,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// How many leading items of a long array to show.
    #[arg(long, default_value_t = 8)]
    array_items: usize,
}

/// Runs `inspect`.
pub fn run(args: &InspectArgs) -> Result<(), Box<dyn std::error::Error>> {
    let gguf = Gguf::open(&args.model)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &to_json(&gguf, args.array_items))?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &gguf, args)?;
    }
    Ok(())
}

struct TypeTotal {
    tensors: usize,
    elements: u64,
    bytes: u64,
}

fn totals(gguf: &Gguf) -> BTreeMap<GgmlType, TypeTotal> {
    let mut m = BTreeMap::new();
    for t in gguf.tensors() {
        let e = m.entry(t.ty).or_insert(TypeTotal {
            tensors: 0,
            elements: 0,
            bytes: 0,
        });
        e.tensors += 1;
        e.elements += t.n_elements();
        e.bytes += t.n_bytes;
    }
    m
}

fn block_count(gguf: &Gguf) -> Option<u64> {
    let arch = gguf.architecture().ok()?;
    gguf.get_opt_u64(&format!("{arch}.block_count"))
        .ok()
        .flatten()
}

fn print_text(out: &mut impl Write, gguf: &Gguf, args: &InspectArgs) -> std::io::Result<()> {
    let arch = gguf.architecture().unwrap_or("(none)");
    let n_params: u64 = gguf.tensors().iter().map(|t| t.n_elements()).sum();
    let n_bytes: u64 = gguf.tensors().iter().map(|t| t.n_bytes).sum();
    writeln!(out, "file:          {}", args.model.display())?;
    writeln!(
        out,
        "GGUF version:  {} (alignment {})",
        gguf.version(),
        gguf.alignment()
    )?;
    writeln!(out, "architecture:  {arch}")?;
    if let Some(n) = block_count(gguf) {
        writeln!(out, "blocks:        {n}")?;
    }
    writeln!(out, "file size:     {} bytes", gguf.file_len())?;
    writeln!(out, "tensors:       {}", gguf.tensors().len())?;
    writeln!(out, "parameters:    {n_params}")?;
    writeln!(
        out,
        "tensor bytes:  {n_bytes} ({:.3} bits per parameter)",
        bits_per_param(n_bytes, n_params)
    )?;

    writeln!(out, "\nmetadata ({} keys):", gguf.metadata().len())?;
    for (key, value) in gguf.metadata() {
        writeln!(out, "  {key:<44} {}", summarize(value, args.array_items))?;
    }

    writeln!(out, "\ntensors:")?;
    writeln!(
        out,
        "  {:<40} {:<8} {:<24} {:>12}",
        "name", "type", "shape", "bytes"
    )?;
    for t in gguf.tensors() {
        let shape = t
            .dims
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" x ");
        writeln!(
            out,
            "  {:<40} {:<8} {:<24} {:>12}",
            t.name,
            t.ty.name(),
            shape,
            t.n_bytes
        )?;
    }

    writeln!(out, "\ntotals by type:")?;
    writeln!(
        out,
        "  {:<8} {:>8} {:>14} {:>14} {:>10}",
        "type", "tensors", "elements", "bytes", "bits/elem"
    )?;
    for (ty, t) in totals(gguf) {
        writeln!(
            out,
            "  {:<8} {:>8} {:>14} {:>14} {:>10.3}",
            ty.name(),
            t.tensors,
            t.elements,
            t.bytes,
            bits_per_param(t.bytes, t.elements)
        )?;
    }
    Ok(())
}

fn bits_per_param(bytes: u64, params: u64) -> f64 {
    if params == 0 {
        0.0
    } else {
        bytes as f64 * 8.0 / params as f64
    }
}

fn summarize(value: &MetadataValue, items: usize) -> String {
    match value {
        MetadataValue::Array(a) if a.len() > items => {
            let shown = (0..items)
                .filter_map(|i| a.get(i))
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            format!("[{} × {}] {shown}, …", a.len(), a.element_type().name())
        }
        MetadataValue::String(s) if s.len() > 120 => {
            let text = String::from_utf8_lossy(s);
            let head: String = text.chars().take(100).collect();
            format!("{head:?}… ({} bytes)", s.len())
        }
        v => v.to_string(),
    }
}

fn value_json(value: &MetadataValue) -> Value {
    match value {
        MetadataValue::String(s) => json!(String::from_utf8_lossy(s)),
        MetadataValue::Bool(b) => json!(b),
        MetadataValue::F32(x) => json!(x),
        MetadataValue::F64(x) => json!(x),
        MetadataValue::Array(_) => Value::Null,
        v => match v.as_integer() {
            Some(i) => serde_json::Number::from_i128(i)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            None => Value::Null,
        },
    }
}

fn array_json(a: &MetadataArray, items: usize) -> Value {
    let head: Vec<Value> = (0..a.len().min(items))
        .filter_map(|i| a.get(i))
        .map(|v| value_json(&v))
        .collect();
    json!({
        "type": "array",
        "element_type": a.element_type().name(),
        "length": a.len(),
        "items": head,
        "truncated": a.len() > items,
    })
}

fn to_json(gguf: &Gguf, items: usize) -> Value {
    let metadata: serde_json::Map<String, Value> = gguf
        .metadata()
        .map(|(k, v)| {
            let entry = match v {
                MetadataValue::Array(a) => array_json(a, items),
                v => json!({ "type": v.value_type().name(), "value": value_json(v) }),
            };
            (k.to_string(), entry)
        })
        .collect();
    let tensors: Vec<Value> = gguf
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ty.name(),
                "shape": t.dims,
                "offset": gguf.data_offset() + t.offset,
                "bytes": t.n_bytes,
            })
        })
        .collect();
    let by_type: serde_json::Map<String, Value> = totals(gguf)
        .into_iter()
        .map(|(ty, t)| {
            (
                ty.name().to_string(),
                json!({ "tensors": t.tensors, "elements": t.elements, "bytes": t.bytes }),
            )
        })
        .collect();
    let n_params: u64 = gguf.tensors().iter().map(|t| t.n_elements()).sum();
    let n_bytes: u64 = gguf.tensors().iter().map(|t| t.n_bytes).sum();
    json!({
        "version": gguf.version(),
        "alignment": gguf.alignment(),
        "architecture": gguf.architecture().ok(),
        "block_count": block_count(gguf),
        "file_size": gguf.file_len(),
        "tensor_count": gguf.tensors().len(),
        "parameters": n_params,
        "tensor_bytes": n_bytes,
        "bits_per_parameter": bits_per_param(n_bytes, n_params),
        "metadata": metadata,
        "tensors": tensors,
        "totals_by_type": by_type,
    })
}
