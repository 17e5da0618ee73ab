//! Hostile input: mutated GGUF files (bit flips, byte stores, huge counts and lengths, bad type
//! ids and offsets, truncations, duplicated names) must give an error or a file that reads back
//! consistently — never a panic, and never one allocation larger than the file (or than 4 KiB,
//! for files smaller than that).
//!
//! 100k cases run by default; `cargo test --release -- --ignored` runs 2M.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use nanorun_formats::{GgmlType, Gguf, GgufWriter, MetadataArray, MetadataValue, StringArray};
use nanorun_tests::data_path;

/// Counts the largest single allocation made on the current thread.
struct TrackingAlloc;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: forwards to the system allocator; only records sizes.
unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: TrackingAlloc = TrackingAlloc;

/// xorshift64*: a small deterministic PRNG so failures reproduce from the case number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A small seed with the metadata of a real fixture and every tensor shrunk to two rows of
/// one block, so that 100k copies are cheap.
fn shrunk_fixture(name: &str) -> Vec<u8> {
    let g = Gguf::open(data_path(&format!("fixtures/{name}"))).expect("fixture");
    let mut fresh = GgufWriter::new();
    for (k, v) in g.metadata() {
        fresh.set(k, v.clone());
    }
    for (i, t) in g.tensors().iter().enumerate() {
        let dims = [t.ty.block_size() as u64, 2];
        let n = t.ty.row_bytes(dims[0]).unwrap() as usize * 2;
        let data: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8).collect();
        fresh.add_tensor(&t.name, t.ty, &dims, data).unwrap();
    }
    let mut out = Vec::new();
    fresh.write_to(&mut out).unwrap();
    out
}

/// A synthetic seed with every metadata value type and several tensor types.
fn synthetic() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.set_str("general.architecture", "llama");
    w.set("general.alignment", MetadataValue::U32(64));
    w.set("t.u8", MetadataValue::U8(7));
    w.set("t.i8", MetadataValue::I8(-7));
    w.set("t.u16", MetadataValue::U16(700));
    w.set("t.i16", MetadataValue::I16(-700));
    w.set("t.i32", MetadataValue::I32(-70000));
    w.set("t.f32", MetadataValue::F32(0.5));
    w.set("t.bool", MetadataValue::Bool(true));
    w.set("t.u64", MetadataValue::U64(1 << 40));
    w.set("t.i64", MetadataValue::I64(-(1 << 40)));
    w.set("t.f64", MetadataValue::F64(0.25));
    let mut s = StringArray::default();
    for i in 0..64 {
        s.push(format!("tok{i}").as_bytes());
    }
    w.set_array("t.strings", MetadataArray::String(s));
    w.set_array(
        "t.f32s",
        MetadataArray::F32((0..64).map(|i| i as f32).collect()),
    );
    w.set_array("t.bools", MetadataArray::Bool(vec![true, false, true]));
    w.set_array("t.u64s", MetadataArray::U64(vec![1, 2, 3]));
    for (i, ty) in [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ]
    .into_iter()
    .enumerate()
    {
        let dims = [ty.block_size() as u64 * 2, 3];
        let n = ty.row_bytes(dims[0]).unwrap() as usize * 3;
        w.add_tensor(&format!("blk.{i}.w"), ty, &dims, vec![i as u8; n])
            .unwrap();
    }
    let mut out = Vec::new();
    w.write_to(&mut out).unwrap();
    out
}

const INTERESTING_U64: [u64; 10] = [
    0,
    1,
    u64::MAX,
    u64::MAX / 2,
    i64::MAX as u64 + 1,
    1 << 32,
    1 << 40,
    0xFFFF_FFFF,
    64,
    31,
];

/// Applies one random mutation to `buf`; returns a short description for failure reports.
fn mutate(rng: &mut Rng, buf: &mut Vec<u8>, header_len: usize) -> String {
    let len = buf.len();
    // Most mutations land in the header, where the parser's decisions are.
    let pos = if rng.below(10) < 9 {
        rng.below(header_len)
    } else {
        rng.below(len)
    };
    match rng.below(8) {
        0 => {
            let bit = rng.below(8);
            buf[pos] ^= 1 << bit;
            format!("flip bit {bit} at {pos}")
        }
        1 => {
            let v = [0u8, 0xFF, 0x7F, 0x80, 1, 9, 12][rng.below(7)];
            buf[pos] = v;
            format!("byte {v:#x} at {pos}")
        }
        2 | 3 => {
            let mut v = INTERESTING_U64[rng.below(INTERESTING_U64.len())];
            if rng.below(3) == 0 {
                v = v
                    .wrapping_add(len as u64)
                    .wrapping_sub(rng.below(16) as u64);
            }
            let end = (pos + 8).min(len);
            buf[pos..end].copy_from_slice(&v.to_le_bytes()[..end - pos]);
            format!("u64 {v:#x} at {pos}")
        }
        4 => {
            let v = rng.below(64) as u32;
            let end = (pos + 4).min(len);
            buf[pos..end].copy_from_slice(&v.to_le_bytes()[..end - pos]);
            format!("u32 {v} at {pos}")
        }
        5 => {
            let keep = rng.below(len);
            buf.truncate(keep);
            format!("truncate to {keep}")
        }
        6 => {
            // Copy a run of header bytes over another place: duplicates names, shifts fields.
            let from = rng.below(header_len);
            let n = 1 + rng.below(40);
            let n = n.min(len - from).min(len - pos);
            let chunk = buf[from..from + n].to_vec();
            buf[pos..pos + n].copy_from_slice(&chunk);
            format!("copy {n} bytes {from} -> {pos}")
        }
        _ => {
            let n = 1 + rng.below(4);
            let mut out = String::new();
            for _ in 0..n {
                let p = rng.below(header_len);
                buf[p] = rng.next() as u8;
                out += &format!("rand byte at {p}; ");
            }
            out
        }
    }
}

/// A file that parsed must be consistent: every tensor inside it, and writing it out and
/// reading that back gives the same metadata and tensor table.
fn check_accepted(g: &Gguf) {
    for t in g.tensors() {
        assert_eq!(g.tensor_data(t).len() as u64, t.n_bytes);
        assert_eq!(
            t.ty.row_bytes(t.row_len()).map(|r| r * t.n_rows()),
            Some(t.n_bytes)
        );
        assert!(t.dims.len() <= 4 && t.name.len() < 64);
    }
    let mut out = Vec::new();
    GgufWriter::from_gguf(g)
        .write_to(&mut out)
        .expect("rewrite an accepted file");
    let again = Gguf::from_bytes(out).expect("re-read an accepted file");
    assert_eq!(again.tensors(), g.tensors());
    assert_eq!(again.metadata().count(), g.metadata().count());
}

fn run_cases(n_cases: u64, seed: u64) {
    let seeds = [
        ("llama fixture", shrunk_fixture("llama-Q4_K_M.gguf")),
        (
            "granitehybrid fixture",
            shrunk_fixture("granitehybrid-Q4_K_M.gguf"),
        ),
        ("synthetic", synthetic()),
    ];
    let mut accepted = 0u64;
    let mut rejected = 0u64;
    for (case, _) in (0..n_cases).zip(0..) {
        let mut rng = Rng(seed ^ (case + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (name, base) = &seeds[case as usize % seeds.len()];
        let g = Gguf::from_bytes(base.clone()).expect("seed is valid");
        let header_len = g.data_offset() as usize;
        drop(g);
        let mut buf = base.clone();
        let mut what = Vec::new();
        for _ in 0..1 + rng.below(3) {
            if buf.is_empty() {
                break;
            }
            let limit = header_len.min(buf.len());
            what.push(mutate(&mut rng, &mut buf, limit));
        }
        let file_len = buf.len();
        LARGEST.with(|l| l.set(0));
        let result = std::panic::catch_unwind(move || Gguf::from_bytes(buf));
        let largest = LARGEST.with(|l| l.get());
        let result =
            result.unwrap_or_else(|_| panic!("case {case} ({name}): panic after {what:?}"));
        // The buffer itself is handed in, not allocated by the parser.
        // Small files may hold a few entries whose in-memory form outweighs their bytes on disk.
        assert!(
            largest <= file_len.max(4096),
            "case {case} ({name}): allocation of {largest} bytes for a {file_len}-byte file after {what:?}: {:?}",
            result.as_ref().map(|g| g.tensors().len()).map_err(|e| e.to_string())
        );
        match result {
            Ok(g) => {
                check_accepted(&g);
                accepted += 1;
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                rejected += 1;
            }
        }
    }
    eprintln!("{n_cases} mutated files: {accepted} accepted and consistent, {rejected} rejected with an error");
    assert!(
        rejected > n_cases / 4,
        "mutations too weak: only {rejected} rejected"
    );
}

#[test]
fn mutated_files_never_panic_or_overallocate_100k() {
    run_cases(100_000, 0x5EED);
}

#[test]
#[ignore = "long run: cargo test --release -p nanorun-tests --test gguf_hostile -- --ignored"]
fn mutated_files_never_panic_or_overallocate_2m() {
    run_cases(2_000_000, 0xD1CE);
}

#[test]
fn targeted_corruptions_name_what_is_wrong() {
    let base = synthetic();

    let mut b = base.clone();
    b[0] = b'X';
    assert!(err(b).contains("magic"));

    let mut b = base.clone();
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(err(b).contains("version 1"));

    let mut b = base.clone();
    b[4..8].copy_from_slice(&0x0300_0000u32.to_le_bytes());
    assert!(err(b).contains("big-endian"));

    let mut b = base.clone();
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(err(b).contains("tensor count"));

    let mut b = base.clone();
    b[16..24].copy_from_slice(&(1u64 << 50).to_le_bytes());
    assert!(err(b).contains("metadata count"));

    let g = Gguf::from_bytes(base.clone()).unwrap();
    let last = g.tensors().last().unwrap();
    let end = g.data_offset() + last.offset + last.n_bytes;
    let mut b = base.clone();
    b.truncate(end as usize - 1);
    let e = err(b);
    assert!(
        e.contains("blk.5.w") && e.contains("outside the file"),
        "{e}"
    );

    // Rename t.u16 to t.u8x... same length keys: make "t.i8" a duplicate of "t.u8".
    let mut b = base.clone();
    let at = find(&b, b"t.i8");
    b[at..at + 4].copy_from_slice(b"t.u8");
    let e = err(b);
    assert!(e.contains("duplicate metadata key 't.u8'"), "{e}");

    let mut b = base.clone();
    let at = find(&b, b"blk.1.w");
    b[at..at + 7].copy_from_slice(b"blk.0.w");
    let e = err(b);
    assert!(
        e.contains("blk.0.w") && e.contains("duplicate tensor name"),
        "{e}"
    );

    // The type id follows the name, n_dims and two dims.
    let mut b = base.clone();
    let at = find(&b, b"blk.2.w") + 7 + 4 + 16;
    b[at..at + 4].copy_from_slice(&4u32.to_le_bytes());
    let e = err(b);
    assert!(
        e.contains("blk.2.w") && e.contains("unknown ggml type id 4"),
        "{e}"
    );

    // Offset field follows the type id.
    let mut b = base.clone();
    let at = find(&b, b"blk.3.w") + 7 + 4 + 16 + 4;
    b[at..at + 8].copy_from_slice(&8u64.to_le_bytes());
    let e = err(b);
    assert!(e.contains("blk.3.w") && e.contains("running sum"), "{e}");

    // Row length not a multiple of the block: dims[0] of the Q4_0 tensor.
    let mut b = base.clone();
    let at = find(&b, b"blk.2.w") + 7 + 4;
    b[at..at + 8].copy_from_slice(&33u64.to_le_bytes());
    let e = err(b);
    assert!(e.contains("blk.2.w") && e.contains("block size"), "{e}");

    // Alignment that is not a power of two.
    let mut b = base.clone();
    let at = find(&b, b"general.alignment") + 17 + 4;
    b[at..at + 4].copy_from_slice(&48u32.to_le_bytes());
    assert!(err(b).contains("general.alignment"));

    // n_dims > 4.
    let mut b = base.clone();
    let at = find(&b, b"blk.4.w") + 7;
    b[at..at + 4].copy_from_slice(&5u32.to_le_bytes());
    let e = err(b);
    assert!(e.contains("blk.4.w") && e.contains("5 dimensions"), "{e}");

    // A string length far beyond the file.
    let mut b = base.clone();
    let at = find(&b, b"tok0") - 8;
    b[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let e = err(b);
    assert!(
        e.contains("string length") && e.contains("t.strings"),
        "{e}"
    );
}

#[track_caller]
fn err(bytes: Vec<u8>) -> String {
    Gguf::from_bytes(bytes).unwrap_err().to_string()
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}
