"""Throwaway prototype behind docs/RESULTS.md ("uspst: what else was tried"); not library code.

Input noise, input dropout and an exponential moving average of the weights (subclassing
TrainingRun), on uspst folds of the exploration split (seed 1).

    python bench/explore/uspst_regularise_prototype.py uspst 0,1,2,3,4,5,6,7,8,9 base,ema0.99
"""
import os, sys, time
os.environ.setdefault("OMP_NUM_THREADS","1")
import numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2])); sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import explore_protocol as ep
from hraml_core import HRAML
from hraml_core.training import TrainingRun
from hraml_core.tasks import encode_targets
from hraml_core.preprocessing import Preprocessor
from hraml_core.protocol import fold_splits
from hraml_core.evaluate import evaluate_embedding
from hraml_core.loss import all_pairs_alignment_loss

class NoisyRun(TrainingRun):
    noise=0.0; drop=0.0; ema=0.0
    def step(self):
        idx=self.sampler.batch_indices()
        x=self.X[idx]
        if self.noise: x=x+self.noise*self._rms*torch.randn(x.shape,generator=self.generator)
        if self.drop: x=x*(torch.rand(x.shape,generator=self.generator)>self.drop)/(1-self.drop)
        Z=self.encoder(x); G=self.batch_relation(idx)
        fit=all_pairs_alignment_loss(Z,G)
        self.optimizer.zero_grad(); fit.backward(); self.optimizer.step()
        if self.ema:
            with torch.no_grad():
                for e,p in zip(self._ema,self.encoder.parameters()): e.mul_(self.ema).add_(p,alpha=1-self.ema)
        self.state.step+=1
        return float(fit)
    def embed_ema(self,X):
        if not self.ema: return self.embed(X)
        saved=[p.detach().clone() for p in self.encoder.parameters()]
        with torch.no_grad():
            for e,p in zip(self._ema,self.encoder.parameters()): p.copy_(e)
        out=self.embed(X)
        with torch.no_grad():
            for s,p in zip(saved,self.encoder.parameters()): p.copy_(s)
        return out

def run(ds_name, folds, configs, checkpoints=(20,50,100,150,200), seed0=1):
    ds=ep._dataset(ds_name); X,Y,task=ds.X,ds.Y,ds.task
    splits=fold_splits(task,Y,10,seed0); res={}
    for f in folds:
        tr,te=splits[f]; seed=seed0+f
        pre=Preprocessor("pca",100,random_state=seed); Z=pre.fit_transform(X[tr]); Zt=pre.transform(X[te])
        for name,(params,extra) in configs.items():
            m=HRAML(task=task,**params); t=encode_targets(Y[tr],task)
            r=NoisyRun(Z,t.Y,t.task,m.train_config(seed))
            for k,v in extra.items(): setattr(r,k,v)
            r._rms=float(r.X.std(0).pow(2).mean().sqrt())
            r._ema=[p.detach().clone() for p in r.encoder.parameters()]
            t0=time.perf_counter()
            for e in range(1,max(checkpoints)+1):
                for _ in range(r.sampler.steps_per_epoch): r.step()
                if e in checkpoints:
                    res.setdefault((name,e),[]).append(evaluate_embedding(task,r.embed_ema(Z),Y[tr],r.embed_ema(Zt),Y[te],k=4)["accuracy"])
            res.setdefault((name,"s"),[]).append(time.perf_counter()-t0)
        print("fold",f,flush=True)
    for k,v in res.items(): print(ds_name,k,f"{np.mean(v):.4f}")
cfgs={"base":({},{}),"noise0.3":({},{"noise":0.3}),"noise0.6":({},{"noise":0.6}),"noise1.0":({},{"noise":1.0}),"drop0.2":({},{"drop":0.2}),"ema0.99":({},{"ema":0.99}),"ema0.995":({},{"ema":0.995}),"ema0.99-drop0.2":({},{"ema":0.99,"drop":0.2}),"ema0.99-h512-256":({"hidden":(512,256)},{"ema":0.99})}
if len(sys.argv)>3: cfgs={k:v for k,v in cfgs.items() if k in sys.argv[3].split(",")}
run(sys.argv[1],[int(x) for x in sys.argv[2].split(",")],cfgs)
