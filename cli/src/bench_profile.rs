//! `nanorun bench --profile`: where a step's time goes, from the forward state's profile
//! (`ForwardState::set_profiling`): each kind of weight matrix's matmuls (calls, time per call
//! and per step, share of the step, weight bytes read per second while in them), then the rest
//! of the forward pass (attention, norms, RoPE, activation functions, sampling inputs).

use nanorun::model::profile::LayerTimes;
use serde_json::{json, Value};

/// A markdown table of `p` under the heading `title`.
pub fn table(title: &str, p: &LayerTimes) -> String {
    let steps = p.forwards.max(1) as f64;
    let total = p.total().as_secs_f64();
    let share = |secs: f64| {
        if total > 0.0 {
            100.0 * secs / total
        } else {
            0.0
        }
    };
    let mut s = format!(
        "\n{title}: {:.3} ms per step over {} steps\n\n\
         | op | calls per step | µs per call | ms per step | share | GB/s |\n\
         | --- | ---: | ---: | ---: | ---: | ---: |\n",
        1e3 * total / steps,
        p.forwards
    );
    let mut in_matmuls = 0.0;
    for m in &p.matmuls {
        let secs = m.time.as_secs_f64();
        in_matmuls += secs;
        let gbs = if secs > 0.0 {
            m.weight_bytes as f64 / secs / 1e9
        } else {
            0.0
        };
        s += &format!(
            "| {} | {:.0} | {:.1} | {:.3} | {:.1} % | {gbs:.1} |\n",
            m.name,
            m.calls as f64 / steps,
            1e6 * secs / m.calls.max(1) as f64,
            1e3 * secs / steps,
            share(secs),
        );
    }
    let rest = (total - in_matmuls).max(0.0);
    s += &format!(
        "| everything else | - | - | {:.3} | {:.1} % | - |\n",
        1e3 * rest / steps,
        share(rest)
    );
    s
}

/// `p` as JSON: per step, the total and each kind of matrix's matmuls.
pub fn json(p: &LayerTimes) -> Value {
    let steps = p.forwards.max(1) as f64;
    let ops: Vec<Value> = p
        .matmuls
        .iter()
        .map(|m| {
            json!({
                "op": m.name,
                "calls_per_step": m.calls as f64 / steps,
                "ms_per_step": 1e3 * m.time.as_secs_f64() / steps,
                "weight_bytes_per_step": m.weight_bytes as f64 / steps,
            })
        })
        .collect();
    json!({ "steps": p.forwards, "ms_per_step": 1e3 * p.total().as_secs_f64() / steps, "matmuls": ops })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nanorun::model::profile::MatmulTime;

    use super::*;

    #[test]
    fn table_gives_each_op_per_step_and_the_rest() {
        let p = LayerTimes {
            ffn: Duration::from_millis(6),
            other: Duration::from_millis(4),
            forwards: 2,
            tokens: 2,
            matmuls: vec![
                MatmulTime {
                    name: "output".into(),
                    calls: 2,
                    time: Duration::from_millis(4),
                    weight_bytes: 40_000_000,
                },
                MatmulTime {
                    name: "ffn_gate+ffn_up".into(),
                    calls: 36,
                    time: Duration::from_millis(3),
                    weight_bytes: 0,
                },
            ],
            ..LayerTimes::default()
        };
        let t = table("tg", &p);
        assert!(t.contains("tg: 5.000 ms per step over 2 steps"), "{t}");
        assert!(
            t.contains("| output | 1 | 2000.0 | 2.000 | 40.0 % | 10.0 |"),
            "{t}"
        );
        assert!(
            t.contains("| ffn_gate+ffn_up | 18 | 83.3 | 1.500 | 30.0 % | 0.0 |"),
            "{t}"
        );
        assert!(
            t.contains("| everything else | - | - | 1.500 | 30.0 % | - |"),
            "{t}"
        );
        assert_eq!(json(&p)["matmuls"][1]["calls_per_step"], 18.0);
    }
}
