#!/usr/bin/env python3
"""Prints the mcx-ibc vs wolfCrypt table of docs/BENCHMARKS.md from the
criterion results of `cargo bench -p mcx-ibc --bench peer_wolfssl`."""
import json,os
base='target/criterion'
rows=[('ECCSI sign','eccsi/sign'),('ECCSI verify (HS from the signature)','eccsi/verify'),('SAKKE encapsulation (recipient prepared)','sakke/encapsulate'),('SAKKE decapsulation','sakke/decapsulate'),('SAKKE decapsulation, receiver table','sakke/decapsulate_receiver_table')]
def med(p):
    f=os.path.join(base,p,'new','estimates.json')
    return json.load(open(f))['median']['point_estimate']
for name,p in rows:
    m=med(p+'_mcx'); w=med(p+'_wolfssl')
    fmt=lambda ns: f"{ns/1e6:.2f} ms" if ns>=1e6 else f"{ns/1e3:.0f} µs"
    print(f"| {name} | {fmt(m)} | {fmt(w)} | {w/m:.1f}x |")
