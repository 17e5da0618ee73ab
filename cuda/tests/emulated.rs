//! The CUDA kernel sources *executed* on the CPU: each module is compiled by g++ together with
//! `emu/shim.h`, a small emulation of CUDA's execution model (every thread of a block an OS
//! thread, `__syncthreads` a barrier, warp shuffles through a per-warp buffer, blocks one
//! after another), and launched with the geometry of `geometry.rs` and arguments laid out as
//! cuLaunchKernel takes them. The results are checked against the same scalar references as
//! the GPU tests.
//!
//! This verifies the kernels' logic — indexing, reductions, online softmax, tiling, barrier
//! placement — not a GPU: NVRTC's code, the hardware, and the cudarc launches are not involved.
//! Without g++ the tests print SKIPPED and pass.

mod common;

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CString};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use common::{
    argmax_ref, attention_ref, close, glu_ref, matmul_ref, quantized_matrix, rms_norm_ref,
    rope_ref, softmax_ref, values,
};
use half::f16;
use nanorun_cuda::device::{AttnParams, RopeParams};
use nanorun_cuda::geometry::{self, Launch};
use nanorun_cuda::layout::{self, WeightType};
use nanorun_cuda::paged;
use nanorun_cuda::source::{self, ModuleSource};

const SHIM: &str = include_str!("emu/shim.h");

type LaunchFn =
    unsafe extern "C" fn(*const c_char, *const u32, *const u32, *mut *mut c_void) -> i32;

/// One module compiled for the emulation.
struct Emu {
    _lib: libloading::Library,
    launch: LaunchFn,
}

/// The C++ text of `m` for the emulation: shim, prelude, body, and a dispatcher from kernel
/// name to `emu_launch`.
fn emu_source(m: &ModuleSource) -> String {
    let mut s = format!("{SHIM}\n{}\n", m.full_source());
    s.push_str(
        "extern \"C\" int nanorun_emu_launch(const char* name, const unsigned* g, \
         const unsigned* b, void** args) {\n",
    );
    for k in m.kernels {
        s.push_str(&format!(
            "  if (strcmp(name, \"{k}\") == 0) {{ emu_launch({k}, g, b, args); return 0; }}\n"
        ));
    }
    s.push_str("  return -1;\n}\n");
    s
}

fn have_gxx() -> bool {
    Command::new("g++")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The module defining `kernel`, compiled once per test process.
fn module(kernel: &str) -> Arc<Emu> {
    static BUILT: OnceLock<Mutex<HashMap<&'static str, Arc<Emu>>>> = OnceLock::new();
    let m = source::module_of(kernel).unwrap_or_else(|| panic!("no module defines {kernel}"));
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(e) = built.get(m.name) {
        return e.clone();
    }
    let dir = std::env::temp_dir().join(format!("nanorun-emu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src: PathBuf = dir.join(format!("{}.cpp", m.name));
    let lib = dir.join(format!("{}.so", m.name));
    std::fs::write(&src, emu_source(m)).unwrap();
    let out = Command::new("g++")
        .args([
            "-std=c++20",
            "-O1",
            "-shared",
            "-fPIC",
            "-pthread",
            "-Wno-unknown-pragmas",
            "-o",
        ])
        .arg(&lib)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "g++ could not build {}.cu for the emulation:\n{}",
        m.name,
        String::from_utf8_lossy(&out.stderr)
    );
    // SAFETY: our own library, just built; its initialisers are the C++ runtime's.
    let l = unsafe { libloading::Library::new(&lib) }.unwrap();
    // SAFETY: the dispatcher has exactly this signature (see emu_source).
    let launch = *unsafe { l.get::<LaunchFn>(b"nanorun_emu_launch\0") }.unwrap();
    let e = Arc::new(Emu { _lib: l, launch });
    built.insert(m.name, e.clone());
    e
}

/// A pointer to an argument's value, as cuLaunchKernel's `kernelParams` holds it.
fn arg<T>(v: &T) -> *mut c_void {
    v as *const T as *mut c_void
}

/// Runs `kernel` with launch `l` and the argument pointers `args`.
fn launch(kernel: &str, l: Launch, args: &[*mut c_void]) {
    // One launch at a time: `__shared__` arrays are statics of the module.
    static ONE: Mutex<()> = Mutex::new(());
    let e = module(kernel);
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let name = CString::new(kernel).unwrap();
    let g = [l.grid.0, l.grid.1, l.grid.2];
    let b = [l.block.0, l.block.1, l.block.2];
    let mut a = args.to_vec();
    // SAFETY: the arguments point at values of the kernel's parameter types (held against
    // the PTX by ptx.rs) and at buffers large enough for the launch.
    let rc = unsafe { (e.launch)(name.as_ptr(), g.as_ptr(), b.as_ptr(), a.as_mut_ptr()) };
    assert_eq!(rc, 0, "kernel {kernel} not found in its module");
}

fn skip(test: &str) -> bool {
    if have_gxx() {
        return false;
    }
    println!("SKIPPED: g++ not found, the CUDA emulation cannot be built: {test}");
    true
}

/// `Gpu::linear` as the emulation runs it: Q8_1 + mat-vec for up to 8 tokens, else the tiled
/// matmul.
fn linear(ty: WeightType, w: &[u8], rows: usize, cols: usize, x: &[f32], t: usize) -> Vec<f32> {
    let mut out = vec![0f32; t * rows];
    let (wp, row_bytes, r, c) = (
        w.as_ptr(),
        (cols / ty.block_values() * ty.block_bytes()) as u64,
        rows as i32,
        cols as i32,
    );
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    if t > nanorun_cuda::device::MATVEC_MAX_TOKENS {
        let n_t = t as i32;
        let l = geometry::matmul(rows, t).unwrap();
        launch(
            &format!("mm_{}", ty.suffix()),
            l,
            &[
                arg(&wp),
                arg(&row_bytes),
                arg(&r),
                arg(&c),
                arg(&xp),
                arg(&n_t),
                arg(&op),
            ],
        );
    } else if ty.quantized() {
        let mut q8 = vec![0u8; layout::q8_1_bytes(t, cols)];
        let (qp, nb) = (q8.as_mut_ptr(), (t * cols / 32) as i32);
        launch(
            "quantize_q8_1",
            geometry::quantize_q8_1(t * cols / 32).unwrap(),
            &[arg(&xp), arg(&qp), arg(&nb)],
        );
        let l = geometry::matvec(rows, t).unwrap();
        launch(
            &format!("mmv_{}", ty.suffix()),
            l,
            &[
                arg(&wp),
                arg(&row_bytes),
                arg(&r),
                arg(&c),
                arg(&qp),
                arg(&op),
            ],
        );
    } else {
        let l = geometry::matvec(rows, t).unwrap();
        launch(
            &format!("mmv_{}", ty.suffix()),
            l,
            &[
                arg(&wp),
                arg(&row_bytes),
                arg(&r),
                arg(&c),
                arg(&xp),
                arg(&op),
            ],
        );
    }
    out
}

#[test]
fn emulated_linear_matches_the_dequantized_product_for_every_type() {
    if skip("emulated_linear_matches_the_dequantized_product_for_every_type") {
        return;
    }
    let (rows, cols) = (67, 512);
    for ty in WeightType::ALL {
        let (bytes, deq) = quantized_matrix(ty, rows, cols, 11);
        for t in [1usize, 3, 40] {
            let x = values(t * cols, 5);
            let got = linear(ty, &bytes, rows, cols, &x, t);
            let tol = if ty.quantized() && t <= 8 { 0.05 } else { 1e-4 };
            close(
                &got,
                &matmul_ref(&deq, &x, rows, cols, t),
                tol,
                &format!("{ty:?} x {t} tokens"),
            );
            if ty.quantized() && t <= 8 {
                // Tighter: the same Q8_1 activations and run dots as the host mirror.
                let want: Vec<f32> = (0..t * rows)
                    .map(|i| {
                        let (tt, r) = (i / rows, i % rows);
                        let row = &bytes[r * (bytes.len() / rows)..];
                        (0..cols / 32)
                            .map(|run| {
                                let a = layout::Q8_1Block::quantize(
                                    x[tt * cols + 32 * run..][..32].try_into().unwrap(),
                                );
                                let per = ty.block_values() / 32;
                                let blk = &row[run / per * ty.block_bytes()..];
                                layout::dot_run32(ty, blk, run % per, &a).unwrap() as f64
                            })
                            .sum::<f64>() as f32
                    })
                    .collect();
                close(
                    &got,
                    &want,
                    1e-4,
                    &format!("{ty:?} x {t} tokens vs the host mirror"),
                );
            }
        }
        // Embedding rows.
        let ids = [3u32, 0, 66];
        let mut out = vec![0f32; 3 * cols];
        let (wp, row_bytes, c, ip, scale, op) = (
            bytes.as_ptr(),
            (bytes.len() / rows) as u64,
            cols as i32,
            ids.as_ptr(),
            2.0f32,
            out.as_mut_ptr(),
        );
        launch(
            &format!("get_rows_{}", ty.suffix()),
            geometry::per_row(3).unwrap(),
            &[
                arg(&wp),
                arg(&row_bytes),
                arg(&c),
                arg(&ip),
                arg(&scale),
                arg(&op),
            ],
        );
        for (i, &r) in ids.iter().enumerate() {
            let want: Vec<f32> = deq[r as usize * cols..][..cols]
                .iter()
                .map(|v| v * 2.0)
                .collect();
            close(
                &out[i * cols..][..cols],
                &want,
                0.0,
                &format!("{ty:?} get_rows {r}"),
            );
        }
    }
}

#[test]
fn emulated_quantize_q8_1_matches_the_host_quantizer_bit_for_bit() {
    if skip("emulated_quantize_q8_1_matches_the_host_quantizer_bit_for_bit") {
        return;
    }
    let mut x = values(32 * 10, 3);
    x[32..64].iter_mut().for_each(|v| *v = 0.0); // an all-zero block
    let mut q = vec![0u8; 10 * layout::Q8_1_BLOCK_BYTES];
    let (xp, qp, nb) = (x.as_ptr(), q.as_mut_ptr(), 10i32);
    launch(
        "quantize_q8_1",
        geometry::quantize_q8_1(10).unwrap(),
        &[arg(&xp), arg(&qp), arg(&nb)],
    );
    for (i, b) in q.chunks_exact(layout::Q8_1_BLOCK_BYTES).enumerate() {
        let want = layout::Q8_1Block::quantize(x[32 * i..][..32].try_into().unwrap());
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), want.d, "block {i} d");
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), want.s, "block {i} s");
        let qs: Vec<i8> = b[4..].iter().map(|&v| v as i8).collect();
        assert_eq!(qs, want.qs.to_vec(), "block {i} qs");
    }
}

#[test]
fn emulated_norm_elementwise_softmax_and_argmax_kernels_match_scalar_code() {
    if skip("emulated_norm_elementwise_softmax_and_argmax_kernels_match_scalar_code") {
        return;
    }
    let (n_rows, width) = (3usize, 640usize);
    let n = n_rows * width;
    let (x, w, up) = (values(n, 21), values(width, 22), values(n, 23));
    let (wi, ni, eps) = (width as i32, n as i32, 1e-6f32);
    let per_row = geometry::per_row(n_rows).unwrap();
    let ew = geometry::elementwise(n).unwrap();

    let mut y = vec![0f32; n];
    let (xp, wp, yp) = (x.as_ptr(), w.as_ptr(), y.as_mut_ptr());
    launch(
        "rms_norm",
        per_row,
        &[arg(&xp), arg(&wp), arg(&yp), arg(&wi), arg(&eps)],
    );
    close(&y, &rms_norm_ref(&x, &w, width, eps), 1e-5, "rms_norm");
    // In place, without a weight.
    let mut z = x.clone();
    let (zp, null) = (z.as_mut_ptr(), 0u64);
    launch(
        "rms_norm",
        per_row,
        &[arg(&zp), arg(&null), arg(&zp), arg(&wi), arg(&eps)],
    );
    close(
        &z,
        &rms_norm_ref(&x, &vec![1.0; width], width, eps),
        1e-5,
        "rms_norm in place",
    );

    for gelu in [false, true] {
        let mut g: Vec<f32> = x.iter().map(|v| v * 30.0).collect(); // reaches GELU's clamps
        let want = glu_ref(&g, &up, gelu);
        let (gp, upp) = (g.as_mut_ptr(), up.as_ptr());
        launch(
            if gelu { "geglu" } else { "swiglu" },
            ew,
            &[arg(&gp), arg(&upp), arg(&ni)],
        );
        close(&g, &want, 1e-5, if gelu { "geglu" } else { "swiglu" });
    }

    let mut a = x.clone();
    let (ap, xp, s) = (a.as_mut_ptr(), up.as_ptr(), 0.5f32);
    launch("add_scaled", ew, &[arg(&ap), arg(&xp), arg(&s), arg(&ni)]);
    let want: Vec<f32> = x.iter().zip(&up).map(|(a, b)| a + 0.5 * b).collect();
    close(&a, &want, 0.0, "add_scaled");
    launch("scale", ew, &[arg(&ap), arg(&s), arg(&ni)]);
    close(
        &a,
        &want.iter().map(|v| v * 0.5).collect::<Vec<_>>(),
        0.0,
        "scale",
    );
    let mut bsum = x.clone();
    let (bp, biasp) = (bsum.as_mut_ptr(), w.as_ptr());
    launch("add_bias", ew, &[arg(&bp), arg(&biasp), arg(&wi), arg(&ni)]);
    let want: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, v)| v + w[i % width])
        .collect();
    close(&bsum, &want, 0.0, "add_bias");
    let mut c: Vec<f32> = x.iter().map(|v| v * 100.0).collect();
    let want: Vec<f32> = c.iter().map(|v| (v / 30.0).tanh() * 30.0).collect();
    let (cp, cap) = (c.as_mut_ptr(), 30.0f32);
    launch("softcap", ew, &[arg(&cp), arg(&cap), arg(&ni)]);
    close(&c, &want, 1e-6, "softcap");

    // Columns 100..300 of each row.
    let mut d = vec![0f32; n_rows * 200];
    let (sp, dp, off, dw, dn) = (
        x.as_ptr(),
        d.as_mut_ptr(),
        100i32,
        200i32,
        (n_rows * 200) as i32,
    );
    launch(
        "copy_cols",
        geometry::elementwise(n_rows * 200).unwrap(),
        &[arg(&sp), arg(&wi), arg(&off), arg(&dp), arg(&dw), arg(&dn)],
    );
    let want: Vec<f32> = (0..n_rows)
        .flat_map(|r| x[r * width + 100..r * width + 300].to_vec())
        .collect();
    close(&d, &want, 0.0, "copy_cols");

    let mut sm = x.clone();
    let smp = sm.as_mut_ptr();
    launch("softmax", per_row, &[arg(&smp), arg(&wi)]);
    close(&sm, &softmax_ref(&x, width), 1e-5, "softmax");

    let mut logits = x.clone();
    logits[width + 7] = 5.0;
    logits[width + 300] = 5.0; // a tie: the lower index wins
    let mut am = vec![0u32; n_rows];
    let (lp, amp) = (logits.as_ptr(), am.as_mut_ptr());
    launch("argmax", per_row, &[arg(&lp), arg(&wi), arg(&amp)]);
    assert_eq!(am, argmax_ref(&logits, width));
}

#[test]
fn emulated_rope_matches_the_reference_in_every_mode() {
    if skip("emulated_rope_matches_the_reference_in_every_mode") {
        return;
    }
    let (n_heads, head_dim, n_tokens) = (4usize, 80usize, 3usize);
    let positions = [0i32, 17, 4000];
    let ff: Vec<f32> = (0..32).map(|i| 1.0 + i as f32 * 0.25).collect();
    for (neox, ext_factor, use_ff) in [
        (0, 0.0, false),
        (1, 0.0, false),
        (1, 1.0, false),
        (0, 0.0, true),
    ] {
        let p = RopeParams {
            n_heads: n_heads as i32,
            head_dim: head_dim as i32,
            n_rot: 64, // partial rotation: dims 64..80 stay
            neox,
            base: 10_000.0,
            freq_scale: if ext_factor != 0.0 { 0.25 } else { 1.0 },
            ext_factor,
            attn_factor: 1.0,
            corr0: 3.0,
            corr1: 20.0,
        };
        let x = values(n_tokens * n_heads * head_dim, 31);
        let mut got = x.clone();
        let (xp, pp, ffp) = (
            got.as_mut_ptr(),
            positions.as_ptr(),
            if use_ff {
                ff.as_ptr()
            } else {
                std::ptr::null()
            },
        );
        let l = geometry::rope(n_heads, n_tokens, 64).unwrap();
        launch("rope", l, &[arg(&xp), arg(&pp), arg(&ffp), arg(&p)]);
        let mut want = x.clone();
        for (t, &pos) in positions.iter().enumerate() {
            let row = &mut want[t * n_heads * head_dim..][..n_heads * head_dim];
            rope_ref(row, head_dim, pos as usize, &p, use_ff.then_some(&ff[..]));
        }
        close(
            &got,
            &want,
            2e-3,
            &format!("rope neox={neox} ext={ext_factor} ff={use_ff}"),
        );
    }
}

#[test]
fn emulated_paged_attention_and_kv_store_match_naive_attention() {
    if skip("emulated_paged_attention_and_kv_store_match_naive_attention") {
        return;
    }
    let (n_head, n_kv, hd, bs, n_blocks) = (8usize, 2usize, 96usize, 16usize, 8usize);
    let row = n_kv * hd;
    // Fill the pools through kv_store: every slot once, from f32 rows.
    let n_slots = n_blocks * bs;
    let (kf32, vf32) = (values(n_slots * row, 41), values(n_slots * row, 42));
    let mut k_pool = vec![0u16; n_slots * row];
    let mut v_pool = vec![0u16; n_slots * row];
    let slots: Vec<i32> = (0..n_slots as i32).rev().collect();
    let (kp, vp, sp, kpp, vpp, ri) = (
        kf32.as_ptr(),
        vf32.as_ptr(),
        slots.as_ptr(),
        k_pool.as_mut_ptr(),
        v_pool.as_mut_ptr(),
        row as i32,
    );
    launch(
        "kv_store",
        geometry::per_row(n_slots).unwrap(),
        &[
            arg(&kp),
            arg(&vp),
            arg(&sp),
            arg(&kpp),
            arg(&vpp),
            arg(&ri),
            arg(&ri),
        ],
    );
    for (t, &s) in slots.iter().enumerate() {
        for i in 0..row {
            assert_eq!(
                k_pool[s as usize * row + i],
                f16::from_f32(kf32[t * row + i]).to_bits(),
                "kv_store k"
            );
            assert_eq!(
                v_pool[s as usize * row + i],
                f16::from_f32(vf32[t * row + i]).to_bits(),
                "kv_store v"
            );
        }
    }
    let back = |v: &[u16]| {
        v.iter()
            .map(|&b| f16::from_bits(b).to_f32())
            .collect::<Vec<f32>>()
    };
    let (kf, vf) = (back(&k_pool), back(&v_pool));
    // Two sequences with shuffled blocks; the second lost its first block to a window.
    let t_a: Vec<Option<u32>> = vec![Some(5), Some(2), Some(7)];
    let t_b: Vec<Option<u32>> = vec![None, Some(1), Some(4)];
    let queries = [(0usize, 40usize), (0, 3), (1, 35), (0, 0)];
    for (window, softcap) in [(0i32, 0f32), (20, 0.0), (0, 30.0), (5, 50.0)] {
        let tables: Vec<&[Option<u32>]> = queries
            .iter()
            .map(|&(s, _)| if s == 0 { &t_a[..] } else { &t_b[..] })
            .collect();
        let flat = paged::flatten_tables(&tables).unwrap();
        let q = values(queries.len() * n_head * hd, 43);
        let positions: Vec<usize> = queries.iter().map(|&(_, p)| p).collect();
        let pos: Vec<i32> = positions.iter().map(|&p| p as i32).collect();
        let p = AttnParams {
            n_head: n_head as i32,
            n_head_kv: n_kv as i32,
            head_dim_k: hd as i32,
            head_dim_v: hd as i32,
            block_size: bs as i32,
            max_blocks: flat.max_blocks as i32,
            k_row: row as i32,
            v_row: row as i32,
            kq_scale: 0.1,
            softcap,
            window,
        };
        let mut out = vec![0f32; queries.len() * n_head * hd];
        let (qp, kpp, vpp, tp, pp, op) = (
            q.as_ptr(),
            k_pool.as_ptr(),
            v_pool.as_ptr(),
            flat.entries.as_ptr(),
            pos.as_ptr(),
            out.as_mut_ptr(),
        );
        let l = geometry::attention(n_head, n_kv, hd, hd, queries.len()).unwrap();
        launch(
            "paged_attention",
            l,
            &[
                arg(&qp),
                arg(&kpp),
                arg(&vpp),
                arg(&tp),
                arg(&pp),
                arg(&op),
                arg(&p),
            ],
        );
        let want = attention_ref(&q, &kf, &vf, &flat, &positions, &p);
        close(
            &out,
            &want,
            1e-4,
            &format!("attention window {window} softcap {softcap}"),
        );
    }
}
