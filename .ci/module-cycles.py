#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a circle (issue 19).

A module's imports are the `crate::`, `super::` and `self::` paths in its non-test code,
resolved to the longest module prefix; a module using its own parent or child does not
count. Usage: module-cycles.py CRATE_SRC_DIR...
"""
import re,os,sys
def mods(root):
    out={}
    for dp,dn,fn in os.walk(root):
        for f in fn:
            if not f.endswith('.rs'): continue
            p=os.path.join(dp,f); rel=os.path.relpath(p,root)[:-3]
            parts=rel.split('/')
            if parts[-1] in ('mod','lib','main'): parts=parts[:-1]
            out['::'.join(parts)]=p
    return out
def strip_tests(s):
    i=s.find('#[cfg(test)]')
    return s if i<0 else s[:i]
failed = []
for crate in sys.argv[1:]:
    ms=mods(crate)
    g={m:set() for m in ms}
    for m,p in ms.items():
        s=strip_tests(open(p).read())
        s=re.sub(r'//.*','',s)
        base=m.split('::') if m else []
        for path in re.findall(r'\b((?:crate|super|self)(?:::\w+)+)', s):
            segs=path.split('::')
            if segs[0]=='crate': cur=[]; segs=segs[1:]
            elif segs[0]=='self': cur=base[:]; segs=segs[1:]
            else:
                cur=base[:]
                while segs and segs[0]=='super': cur=cur[:-1]; segs=segs[1:]
            # longest prefix that is a module
            best=None
            for k in range(len(segs),-1,-1):
                cand='::'.join(cur+segs[:k])
                if cand in ms: best=cand; break
            if best is not None and best!=m and not m.startswith(best+'::') and not best.startswith(m+'::') and best!='':
                g[m].add(best)
    # tarjan
    idx={};low={};st=[];on=set();res=[];c=[0]
    def sc(v):
        idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
        for w in g[v]:
            if w not in idx: sc(w);low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],idx[w])
        if low[v]==idx[v]:
            comp=[]
            while True:
                w=st.pop();on.discard(w);comp.append(w)
                if w==v:break
            if len(comp)>1: res.append(comp)
    sys.setrecursionlimit(10000)
    for v in g:
        if v not in idx: sc(v)
    print(crate, "module cycles:", res if res else "none")
    if res:
        failed.append(crate)

sys.exit(1 if failed else 0)
