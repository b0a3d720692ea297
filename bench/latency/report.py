#!/usr/bin/env python3
"""Turns bench/latency/run.sh's results.jsonl into the latency table (printed) and bench/latency/RESULTS.md.

Usage: report.py RESULTS.jsonl --out RESULTS.md [--cpu NAME] [--flags ...] [--load ...] [--cc ...] [--ort VERSION]
"""
import argparse
import datetime
import json
import os

ORDER = ["digits", "mnist1d", "resnet20", "mobilenetv2", "resnet18"]
LABEL = {"digits": "digits CNN", "mnist1d": "MNIST-1D CNN", "resnet20": "ResNet-20 (CIFAR)",
         "mobilenetv2": "MobileNetV2", "resnet18": "ResNet-18"}


def ms(v):
    if v is None:
        return "—"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def ratio(a, b):
    return "—" if a is None or b is None else f"{a / b:.1f}" if a / b >= 10 else f"{a / b:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cpu", default="")
    ap.add_argument("--flags", default="")
    ap.add_argument("--load", default="")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--cc", default="")
    ap.add_argument("--ort", default="")
    a = ap.parse_args()
    models = {}
    for line in open(a.results):
        d = json.loads(line)
        m = models.setdefault(d["model"], {"run": {}, "ort": {}, "mem": {}, "errors": []})
        t = d.get("threads", 1)
        if d["kind"] == "info":
            m["info"] = d
        elif d["kind"] == "run":   # several rounds: the fastest round's median
            k = (t, d["profile"])
            if k not in m["run"] or d["median_ms"] < m["run"][k]["median_ms"]:
                m["run"][k] = d
        elif d["kind"] == "ort":
            k = (t, d["variant"])
            if k not in m["ort"] or d["median_ms"] < m["ort"][k]["median_ms"]:
                m["ort"][k] = d
        elif d["kind"] == "switch":   # per thread count, the first round's (bs_set_profile packs over the pool)
            m.setdefault("switch", {}).setdefault(t, d)
        elif d["kind"] == "model":
            m.setdefault("bundle", d)
        elif d["kind"] == "switch_prepack":
            m["switch_prepack"] = d
        elif d["kind"] == "model_prepack":
            m["bundle_prepack"] = d
        elif d["kind"] == "memory":
            m.setdefault("mem", {})[t] = d
        elif d["kind"] == "weights":
            m["weights"] = d["bytes"]
        elif d["kind"] == "error":
            m["errors"].append(d)
    names = [n for n in ORDER if n in models] + [n for n in models if n not in ORDER]
    counts = sorted({k[0] for m in models.values() for k in list(m["run"]) + list(m["ort"])}) or [1]
    med = lambda d: d["median_ms"] if d else None

    def int8_of(m, t):
        u8, s8 = med(m["ort"].get((t, "u8s8"))), med(m["ort"].get((t, "s8s8")))
        if u8 is not None and (s8 is None or u8 <= s8):
            return u8, "U8S8", s8
        if s8 is not None:
            return s8, "S8S8", u8
        return None, "", None

    tables = []
    for t in counts:
        base = counts[0]
        extra = t != base
        head = (f"| model | input | MMACs | ort fp32 ms | ort int8 ms (faster of U8S8 / S8S8) | ours 8-bit ms | ours 4-bit ms "
                "| ours 2-bit ms | ours/int8 8 · 4 · 2 | ours/fp32 8 · 4 · 2 | "
                + (f"speed-up {base}→{t} threads: ours 8 · ort int8 |" if extra
                   else "bs_set_profile µs (median, max, at each thread count of the run: a switch packs its layers over the pool); with emit --prepack, and its arena |"))
        rows = [head, "|---|---|--:|--:|---|--:|--:|--:|---|---|---|"]
        for n in names:
            m = models[n]
            info = m.get("info", {})
            fp32 = med(m["ort"].get((t, "fp32")))
            int8, which, other = int8_of(m, t)
            int8_text = "—" if int8 is None else f"{ms(int8)} {which}" + (
                "" if other is None else f" ({'S8S8' if which == 'U8S8' else 'U8S8'} {ms(other)})")
            ours = [med(m["run"].get((t, b))) for b in ("8", "4", "2")]
            if extra:
                o1, i1 = med(m["run"].get((base, "8"))), int8_of(m, base)[0]
                last = f"{ratio(o1, ours[0])} · {ratio(i1, int8)}"
            else:
                def us(sw):   # median, max; then the medians by the profile switched to, where the driver gives them
                    if not sw:
                        return "—"
                    f = ".0f" if sw["median_us"] >= 10 else ".1f"
                    into = sw.get("into_median_us") or {}
                    by = f" (into {' · '.join(into)}: {' · '.join(format(v, f) for v in into.values())})" if len(into) > 1 else ""
                    return f"{sw['median_us']:{f}}, {sw['max_us']:{f}}{by}"
                sws = m.get("switch") or {}
                last = us(sws.get(min(sws))) if sws else "—"
                last += "".join(f"; {k} threads {us(sws[k])}" for k in sorted(sws) if sws and k != min(sws))
                if m.get("switch_prepack"):
                    a0, a1 = (m.get("bundle") or {}).get("arena_bytes"), (m.get("bundle_prepack") or {}).get("arena_bytes")
                    arena = "" if not a0 or not a1 else f" (arena {a1 / 2**20:.1f} MiB, {a1 / a0:.2f}×)"
                    last += f"; prepacked {us(m['switch_prepack'])}{arena}"
            macs = info.get("macs")
            rows.append(f"| {LABEL.get(n, n)} | {info.get('input', '')} | {macs / 1e6:.2f} | {ms(fp32)} | {int8_text} | "
                        + " | ".join(ms(o) for o in ours)
                        + f" | {' · '.join(ratio(o, int8) for o in ours)} | {' · '.join(ratio(o, fp32) for o in ours)}"
                        + f" | {last} |" if macs is not None else f"| {n} | | | | | | | | | | |")
        tables.append((t, "\n".join(rows)))

    # Peak memory: the driver's process (bundle loaded, all profiles run) against each onnxruntime process (one session
    # each). "peak" = VmHWM, the resident high-water mark of the process; "net" = peak minus the resident set before the
    # model was loaded (driver: before dlopen; onnxruntime: after importing numpy and onnxruntime, before the session).
    mib = lambda kb: None if kb is None else kb / 1024
    mtxt = lambda v: "—" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.2f}"
    hwm = lambda d: None if not d else mib(d.get("hwm_kb") if d.get("hwm_kb") is not None else d.get("peak_rss_kb"))
    net = lambda d: None if not d or hwm(d) is None or d.get("base_rss_kb") is None else hwm(d) - mib(d["base_rss_kb"])
    mratio = lambda a, b: "—" if a is None or b is None else f"{a / b:.2g}" if a / b < 0.1 else f"{a / b:.2f}"
    mem_rows = ["| model | threads | ours peak MiB | ort fp32 peak MiB | ort int8 peak MiB | peak ours/fp32 · ours/int8 "
                "| ours net MiB | ort fp32 net MiB | ort int8 net MiB | net ours/fp32 · ours/int8 "
                "| ours: arena · .so code · .so read-only · stored INT8 weights, MiB |",
                "|---|--:|--:|--:|---|---|--:|--:|--:|---|---|"]
    for n in names:
        m = models[n]
        for t in counts:
            ours = m["mem"].get(t)
            fp = m["ort"].get((t, "fp32"))
            which = int8_of(m, t)[1]
            i8 = m["ort"].get((t, which.lower())) if which else None
            if not ours and not fp and not i8:
                continue
            parts = "—"
            if ours:
                b = lambda k: None if ours.get(k) is None or ours[k] < 0 else ours[k] / 2**20
                w = m.get("weights")
                parts = " · ".join(mtxt(v) for v in (b("arena_bytes"), b("so_text_bytes"), b("so_ro_bytes"),
                                                     None if w is None else w / 2**20))
            mem_rows.append(
                f"| {LABEL.get(n, n)} | {t} | {mtxt(hwm(ours))} | {mtxt(hwm(fp))} | "
                f"{mtxt(hwm(i8))}{' ' + which if which else ''} | {mratio(hwm(ours), hwm(fp))} · {mratio(hwm(ours), hwm(i8))} | "
                f"{mtxt(net(ours))} | {mtxt(net(fp))} | {mtxt(net(i8))} | {mratio(net(ours), net(fp))} · {mratio(net(ours), net(i8))} | "
                f"{parts} |")
    mem_table = "\n".join(mem_rows)

    def span(ds):
        v = sorted(d["base_rss_kb"] / 1024 for d in ds if d and d.get("base_rss_kb") is not None)
        return "—" if not v else mtxt(v[0]) if mtxt(v[0]) == mtxt(v[-1]) else f"{mtxt(v[0])}–{mtxt(v[-1])}"
    base_ours = span([d for m in models.values() for d in m["mem"].values()])
    base_ort = span([d for m in models.values() for d in m["ort"].values()])

    detail = ["| model | threads | variant | runs | median ms | min ms | mean ms |", "|---|--:|---|--:|--:|--:|--:|"]
    failures = []
    for n in names:
        m = models[n]
        for t in counts:
            for b in ("8", "4", "2"):
                d = m["run"].get((t, b))
                if d:
                    detail.append(f"| {LABEL.get(n, n)} | {t} | ours {b}-bit | {d['runs']} | {ms(d['median_ms'])} | "
                                  f"{ms(d['min_ms'])} | {ms(d['mean_ms'])} |")
            for v in ("fp32", "u8s8", "s8s8"):
                d = m["ort"].get((t, v))
                if d:
                    detail.append(f"| {LABEL.get(n, n)} | {t} | ort {v} | {d['runs']} | {ms(d['median_ms'])} | "
                                  f"{ms(d['min_ms'])} | {ms(d['mean_ms'])} |")
        for e in m["errors"]:
            failures.append(f"- **{LABEL.get(n, n)}**, step `{e['step']}`:\n\n```\n{e['message']}\n```")

    table = "\n\n".join(f"{t} thread{'s' if t != 1 else ''}:\n\n{tab}" for t, tab in tables)
    print(table)
    print("\nPeak memory (resident set; net = peak minus the process's resident set before the model was loaded):\n")
    print(mem_table)
    for f in failures:
        print(f)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    text = f"""# Batch-1 latency: generated C vs onnxruntime

Measured {when} UTC, `bench/latency/run.sh`, {" and ".join(map(str, counts))} threads, {a.cpu} ({a.flags}), load average {a.load} at the end
(the machine is shared, and its speed changed by up to 2× from one second to the next in some sessions: every variant
is timed in {a.rounds} rounds, ours and onnxruntime alternating, and the table keeps each variant's fastest round's median),
{a.cc}, onnxruntime {a.ort}.

Ours: the model quantized by `bitswitch train --ptq --bits 8,4,2` (random calibration data; first and last layer
pinned at 8 bits, so "2-bit" is every switchable layer at w2a2), `bitswitch emit --profiles 8,4,2`, `bitswitch build`
(`-O3 -march=native`; `emit --isa native`, i.e. the **AVX-512 VNNI int8 conv/gemm kernels** on a machine with
`avx512_vnni`, the **AVX2 kernels** on an AVX2 machine, with the Requant fused; Requant, QAdd and QMaxPool vectorized for either ISA, everything else the portable C kernels;
`bs_init(ctx, arena, N)` with N threads), loaded by
`bench/latency/latency_driver.c` (dlopen): per profile `bs_set_profile`, warm-up, then the median of timed `bs_run`
calls (float input → float logits, the input quantize and the output dequantize included). `bs_set_profile` is timed
cycling 8 → 4 → 2 → 8 (each switch re-shifts and re-packs the weights of the layers whose bit-width changes); "prepacked"
is the same model emitted with `--prepack` (every layer's weights made once per bit-width at `bs_init`, so a switch only
repoints the layers), with its arena and the ratio to the default bundle's.
onnxruntime: `intra_op_num_threads=N` (the same N), `ORT_ENABLE_ALL`, `session.run` on one sample (Python call overhead of about
10–20 µs included, which matters only for the two small models); int8 = `quant_pre_process` then `quantize_static`
(QDQ, per-channel weights, MinMax calibration on the same random data) with uint8 (U8S8) and int8 (S8S8)
activations, the faster of the two in the table. Ratios are ours ÷ onnxruntime: above 1, ours is slower.

{table}

Peak memory, MiB (2^20 bytes) of resident set, same run. "peak" is the process's resident high-water mark
(`/proc/self/status` VmHWM): ours = the C driver after loading the bundle and running all its profiles (the driver
also prints `getrusage` ru_maxrss, into `results.jsonl`); onnxruntime = a separate Python process per variant,
one session each (so neither the quantizer nor the other sessions inflate it; its ru_maxrss is not used because
Linux carries the parent's across fork and exec). "net" = peak minus the resident set before the model was loaded:
the driver's before `dlopen` ({base_ours} MiB in this run), onnxruntime's after importing numpy and onnxruntime,
before creating the session ({base_ort} MiB: Python, numpy and onnxruntime's library). Ours in detail: the arena
`bs_arena_size()` asks for (activations and the active profile's shifted, packed weights), the loaded library's
code and read-only segments (the latter holds the stored INT8 weights, once for every profile), and the stored
weights' size that `bitswitch emit` reports. Ratios are ours ÷ onnxruntime.

{mem_table}

Every measurement (median, minimum and mean of the timed runs):

{chr(10).join(detail)}
"""
    if failures:
        text += "\nFailures:\n\n" + "\n\n".join(failures) + "\n"
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
