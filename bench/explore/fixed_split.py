"""Supplement to docs/RESULTS.md: HRAML on the fixed train / test split of Mulan's sizes (not the protocol).

Trains on the first 129 (flags) / 391 (emotions) rows and tests on the rest, with the protocol's model
selection inside the training rows, for model seeds 0-4, and prints the paper's numbers beside.

    python bench/explore/fixed_split.py
"""
import numpy as np, torch
torch.set_num_threads(1)
from hraml_core.data import load_dataset
from hraml_core.protocol import ProtocolConfig, run_method
from hraml_core.paper import paper_value, paper_best
ms=["hamming_loss","ranking_loss","one_error","coverage","average_precision"]
for name,ntr in [("flags",129),("emotions",391)]:
    ds=load_dataset(name,data_dir=str(__import__("pathlib").Path(__file__).resolve().parents[3] / "shared" / "data")); X,Y=ds.X,ds.Y
    tr,te=np.arange(ntr),np.arange(ntr,len(X))
    cfg=ProtocolConfig()
    raw,_=run_method("raw","multilabel",X[tr],Y[tr],X[te],Y[te],cfg,0)
    print(name,"raw      "," ".join(f"{raw[m]:.4f}" for m in ms), " paper raw", " ".join(f"{paper_value(name,'raw',m):.4f}" for m in ms), flush=True)
    res=[]
    for seed in range(5):
        h,ch=run_method("hraml","multilabel",X[tr],Y[tr],X[te],Y[te],cfg,seed)
        res.append(h); print(name,f"hraml s{seed}"," ".join(f"{h[m]:.4f}" for m in ms), ch, flush=True)
    print(name,"hraml mean"," ".join(f"{np.mean([r[m] for r in res]):.4f}" for m in ms))
    print(name,"paper best"," ".join(f"{paper_best(name,m)[1]:.4f}" for m in ms))
