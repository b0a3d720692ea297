#!/usr/bin/env python3
"""Reference values pasted into Tests/BitSwitchRuntimeTests/Training/{LossAndOptimizerTests,BatchNormGradientTests}.swift:
torch.optim steps (SGD, momentum, Nesterov, Adam, AdamW), cross-entropy with label smoothing, T^2-scaled KL
distillation, clip_grad_norm_ and BatchNorm2d running statistics. Usage: .venv/bin/python scripts/training-reference-values.py"""
import torch, torch.nn.functional as F
torch.set_printoptions(precision=10)
p0=[0.5,-1.0,2.0,0.25]
grads=[[0.1,-0.2,0.3,0.0],[-0.05,0.4,0.1,-0.3],[0.2,0.2,-0.1,0.05]]
def run(name, make):
    p=torch.tensor(p0,requires_grad=True)
    opt=make([p])
    for g in grads:
        opt.zero_grad(); p.grad=torch.tensor(g); opt.step()
    print(name, [float('%.9g'%v) for v in p.detach().tolist()])
run("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.01))
run("sgd_mom", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01))
run("sgd_nest", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01))
run("adam", lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.01))
run("adamw", lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1))
z=torch.tensor([[1.0,2.0,-0.5,0.3],[0.1,-1.2,0.7,2.2],[-0.3,0.0,0.4,-2.0]])
y=torch.tensor([1,3,0])
print("ce", F.cross_entropy(z,y).item(), "ce_ls", F.cross_entropy(z,y,label_smoothing=0.1).item())
t=torch.tensor([[0.5,1.0,-1.0,0.0],[1.0,-1.0,0.2,1.5],[0.0,0.3,0.9,-1.0]])
T=2.0
print("kd", (F.kl_div(F.log_softmax(z/T,1),F.softmax(t/T,1),reduction='batchmean')*T*T).item())
# clip grad norm
a=torch.tensor([3.0,4.0],requires_grad=True); b=torch.tensor([12.0],requires_grad=True)
a.grad=torch.tensor([3.0,4.0]); b.grad=torch.tensor([12.0])
n=torch.nn.utils.clip_grad_norm_([a,b],max_norm=1.0)
print("clip", n.item(), a.grad.tolist(), b.grad.tolist())
# BN running stats
bn=torch.nn.BatchNorm2d(2); bn.train()
x=torch.arange(16,dtype=torch.float32).reshape(2,2,2,2)**1.5/10
bn(x); print("bn_rm", bn.running_mean.tolist(), "bn_rv", bn.running_var.tolist())
