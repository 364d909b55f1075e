"""Throwaway prototype behind docs/RESULTS.md ("uspst: what else was tried"); not library code.

The authors' static input-space neighbour pairs (a sampler built here by hand), with and without
extra random partners, and a linear encoder, on uspst folds of the exploration split (seed 1).

    python bench/explore/uspst_pairs_prototype.py uspst 0,1,2
"""
import os, sys, time, math
os.environ.setdefault("OMP_NUM_THREADS","1")
import numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from hraml_core import HRAML
from hraml_core.samplers import PairSampler
from hraml_core.training import TrainingRun
from hraml_core.tasks import encode_targets
from hraml_core.preprocessing import Preprocessor
from hraml_core.protocol import fold_splits
from hraml_core.evaluate import evaluate_embedding
from sklearn.neighbors import NearestNeighbors
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import explore_protocol as ep

class KnnPairs(PairSampler):
    name="knn"
    def __init__(self, X, labels, generator, batch_size=256, partners=4, balance=0.5, extra_random=0):
        n=len(X); super().__init__(n, generator)
        self.batch_size=min(batch_size,n)
        k_same=int(round(balance*partners)); k_diff=partners-k_same
        P=np.zeros((n,partners),dtype=np.int64)
        for c in np.unique(labels):
            idx=np.where(labels==c)[0]; oth=np.where(labels!=c)[0]
            if k_same:
                nn=NearestNeighbors(n_neighbors=min(k_same+1,len(idx))).fit(X[idx]); _,j=nn.kneighbors(X[idx])
                P[idx,:k_same]=idx[j[:,1:k_same+1]]
            if k_diff:
                nn=NearestNeighbors(n_neighbors=k_diff).fit(X[oth]); _,j=nn.kneighbors(X[idx])
                P[idx,k_same:]=oth[j]
        self.P=torch.as_tensor(P); self.extra=extra_random
        self._pos=n; self._perm=None
    @property
    def steps_per_epoch(self): return math.ceil(self.n_samples/self.batch_size)
    def batch_indices(self):
        if self._pos>=self.n_samples:
            self._perm=torch.randperm(self.n_samples,generator=self.generator); self._pos=0
        a=self._perm[self._pos:self._pos+self.batch_size]; self._pos+=self.batch_size
        part=self.P[a]
        rows,inv=torch.unique(torch.cat([a,part.reshape(-1)]),return_inverse=True)
        na=len(a)
        self._anch=inv[:na].repeat_interleave(part.shape[1]); self._part=inv[na:]
        if self.extra:
            r=torch.randint(len(rows),(na*self.extra,),generator=self.generator)
            self._anch=torch.cat([self._anch, inv[:na].repeat_interleave(self.extra)]); self._part=torch.cat([self._part,r])
        return rows
    def select_pairs(self, A, G):
        return self._anch, self._part

def run(ds_name, folds, configs, checkpoints=(10,20,50,100,150,200), seed0=1):
    ds=ep._dataset(ds_name); X,Y,task=ds.X,ds.Y,ds.task
    splits=fold_splits(task,Y,10,seed0)
    res={}
    for f in folds:
        tr,te=splits[f]; seed=seed0+f
        for name,(pre_kind,params,samp) in configs.items():
            pre=Preprocessor(pre_kind,100,random_state=seed); Z=pre.fit_transform(X[tr]); Zt=pre.transform(X[te])
            if name.startswith("rawcos"):
                n=lambda A:A/np.linalg.norm(A,axis=1,keepdims=True)
                res.setdefault((name,0),[]).append(evaluate_embedding(task,n(Z),Y[tr],n(Zt),Y[te],k=4)["accuracy"]); continue
            m=HRAML(task=task,**params); t=encode_targets(Y[tr],task)
            r=TrainingRun(Z,t.Y,t.task,m.train_config(seed))
            if samp is not None:
                r.sampler=KnnPairs(Z,Y[tr],torch.Generator().manual_seed(seed+1),**samp)
            t0=time.perf_counter()
            for e in range(1,max(checkpoints)+1):
                for _ in range(r.sampler.steps_per_epoch): r.step()
                if e in checkpoints:
                    res.setdefault((name,e),[]).append(evaluate_embedding(task,r.embed(Z),Y[tr],r.embed(Zt),Y[te],k=4)["accuracy"])
            res.setdefault((name,"s"),[]).append(time.perf_counter()-t0)
        print("fold",f,"done",flush=True)
    for k,v in res.items():
        print(ds_name, k, f"{np.mean(v):.4f} n={len(v)}")
if __name__=="__main__":
    cfgs={
      "rawcos":("pca",{},None),
      "batch":("pca",{},None),
      "knn4":("pca",{},{"partners":4}),
      "knn8":("pca",{},{"partners":8}),
      "knn8+r4":("pca",{},{"partners":8,"extra_random":4}),
      "lin100":("pca",{"hidden":(),"dim":100,"out_activation":"none"},None),
      "lin100-knn8":("pca",{"hidden":(),"dim":100,"out_activation":"none"},{"partners":8}),
    }
    run(sys.argv[1], [int(x) for x in sys.argv[2].split(",")], cfgs)
