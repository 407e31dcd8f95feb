#!/usr/bin/env python3
"""Chart checks run by helm/test-chart.sh (inside its venv): lint and render helm/sigproxy with the
real Helm SDK (helm-python-sdk) for each value set in helm/tests/values/ and for a consumer chart
that includes the sidecar templates in its own pod; validate every rendered object with
`kubernetes-validate --strict` for Kubernetes 1.30; run `sigproxy check-config` on the policy
rendered into the ConfigMap (with the override keys and key files beside it, as mounted); assert
the invariants the issue asks for (directory mount, no checksum annotation, restricted security
context, probes, resources, the native-sidecar form, termination timing consistent with the
rendered policy's drain, and no environment variable the binary does not read). It writes every
rendered object under --out for checkov.

Prints one line per check and ends with "chart: N passed, M failed"; exits 1 on any failure.
"""

import argparse
import base64
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import helm_python as helm
import yaml

HERE = pathlib.Path(__file__).resolve().parent
CHART = HERE.parent / "sigproxy"
SRC = HERE.parent.parent / "src"
KUBE = "1.30.0"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}  # no schema offline; promtool checks the rules

passed, failed = 0, 0

LINT_AT_VERSION = """
import json, sys
import helm_python as helm
rep = helm.lint(sys.argv[1], json.loads(sys.argv[3]), strict=True, kube_version=sys.argv[2], namespace="sigproxy")
print("errors:", rep.get("errors"))
"""


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}{': ' + detail if detail else ''}")
    return ok


def install(chart, values, release="demo", namespace="sigproxy"):
    cfg = helm.Config(storage_driver="memory", namespace=namespace)
    return cfg.install(str(chart), release, values, dry_run="client", namespace=namespace)


def render(chart, values, release="demo", namespace="sigproxy"):
    rel = install(chart, values, release, namespace)
    return [d for d in yaml.safe_load_all(rel["manifest"]) if d]


def notes(chart, values):
    rel = install(chart, values)
    return rel.get("notes") or ""


def pod_specs(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            yield d, d["spec"]["template"]


def sidecar(pod):
    """The sigproxy container, a classic `containers` entry or a native sidecar (initContainers)."""
    spec = pod["spec"]
    return next(c for c in spec.get("initContainers", []) + spec["containers"]
                if "run" in (c.get("args") or [])[:1])


def binary_env_vars():
    """Every environment variable the sigproxy binary reads, from its source (not a list kept by
    hand): clap `env = "X"`, `env::var("X")` / `var_os("X")`, tracing's `from_env("X")`, and the
    override names of `OVERRIDE_NAMES` (read from the environment at start). Test modules (after
    `#[cfg(test)]`) are left out: what a unit test sets is not what the binary reads."""
    names = set()
    call = re.compile(r'(?:\benv\s*=\s*|\benv::var(?:_os)?\(\s*|\bvar_os\(\s*|from_env\(\s*)"([A-Za-z_][A-Za-z0-9_]*)"')
    for f in sorted(SRC.rglob("*.rs")):
        text = f.read_text().split("#[cfg(test)]")[0]
        names.update(call.findall(text))
        m = re.search(r"const OVERRIDE_NAMES\b[^=]*=\s*\[(.*?)\];", text, re.S)
        if m:
            names.update(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', m.group(1)))
    return names


BINARY_ENV = binary_env_vars()


def policy_int(policy, key, default):
    v = policy.get(key)
    return default if v is None else int(v)


def check_invariants(case, docs):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    cms = [c for c in by_kind.get("ConfigMap", []) if "policy.yaml" in c.get("data", {})]
    check(f"{case}: one ConfigMap with policy.yaml", len(cms) == 1, f"found {len(cms)}")
    for owner, tpl in pod_specs(docs):
        n = f"{case}: {owner['kind']}/{owner['metadata']['name']}"
        ann = (tpl.get("metadata") or {}).get("annotations") or {}
        check(f"{n} has no checksum annotation (policy edits reload, never restart)",
              not any("checksum" in k for k in ann), str(ann))
        c = sidecar(tpl)
        check_lifecycle(n, tpl, c, yaml.safe_load(cms[0]["data"]["policy.yaml"]) if cms else {})
        env = [e["name"] for e in c.get("env") or []]
        check(f"{n} sidecar env vars are all read by the binary ({', '.join(env) or 'none'})",
              not c.get("envFrom") and set(env) <= BINARY_ENV,
              f"not read by sigproxy: {sorted(set(env) - BINARY_ENV)}; envFrom: {c.get('envFrom')}; "
              f"the binary reads {sorted(BINARY_ENV)}")
        mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
        vols = {v["name"]: v for v in tpl["spec"].get("volumes", [])}
        cfg = mounts.get("sigproxy-config", {})
        check(f"{n} mounts the policy ConfigMap as a directory (no subPath)",
              cfg and "subPath" not in cfg and "subPathExpr" not in cfg
              and vols["sigproxy-config"]["configMap"]["name"] == cms[0]["metadata"]["name"]
              and c["args"][-1] == cfg["mountPath"].rstrip("/") + "/policy.yaml",
              f"{cfg} {c['args']}")
        check(f"{n} no container mounts with subPath",
              not any("subPath" in m for ct in tpl["spec"]["containers"] for m in ct.get("volumeMounts", [])))
        sc = c.get("securityContext", {})
        psc = tpl["spec"].get("securityContext", {})
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        check(f"{n} sidecar security context is restricted",
              sc.get("runAsNonRoot") is True and sc.get("readOnlyRootFilesystem") is True
              and sc.get("allowPrivilegeEscalation") is False
              and sc.get("capabilities", {}).get("drop") == ["ALL"]
              and sc.get("runAsUser", 0) >= 10000 and seccomp == "RuntimeDefault", str(sc))
        check(f"{n} sidecar probes /healthz and /readyz on the admin port",
              c["livenessProbe"]["httpGet"]["path"] == "/healthz"
              and c["readinessProbe"]["httpGet"]["path"] == "/readyz"
              and c["readinessProbe"]["httpGet"]["port"] == "admin")
        r = c.get("resources", {})
        check(f"{n} sidecar has cpu/memory requests and limits",
              all(k in r.get(s, {}) for s in ("requests", "limits") for k in ("cpu", "memory")), str(r))
        if "sigproxy-keys" in vols:
            check(f"{n} keys come from a Secret mounted as a directory",
                  "secret" in vols["sigproxy-keys"] and "subPath" not in mounts["sigproxy-keys"])
    for pr in by_kind.get("PrometheusRule", []):
        check(f"{case}: PrometheusRule carries files/alerts.yaml unchanged (the promtool-tested rules)",
              pr["spec"] == yaml.safe_load((CHART / "files/alerts.yaml").read_text()))
    for c in by_kind.get("ConfigMap", []):
        if "sigproxy.json" in c.get("data", {}):
            check(f"{case}: dashboard ConfigMap carries files/dashboard.json",
                  json.loads(c["data"]["sigproxy.json"]) == json.loads((CHART / "files/dashboard.json").read_text()))
    return cms[0] if cms else None


def check_tls(case, docs, policy, values):
    """values.tls: the Secret mounted as a directory (no subPath) with owner/group-only mode,
    the policy's tls: pointing into it, app probes through the proxy port speaking HTTPS."""
    t = values.get("tls") or {}
    if not t.get("enabled"):
        check(f"{case}: no TLS in the policy without tls.enabled", "tls" not in policy)
        return
    mount = t.get("mountPath", "/etc/sigproxy/tls").rstrip("/")
    want = {"cert_file": f"{mount}/tls.crt", "key_file": f"{mount}/tls.key"}
    if t.get("clientAuth"):
        want["client_ca_file"] = f"{mount}/ca.crt"
    check(f"{case}: policy tls: names the mounted Secret's files", policy.get("tls") == want,
          str(policy.get("tls")))
    for owner, tpl in pod_specs(docs):
        n = f"{case}: {owner['kind']}/{owner['metadata']['name']}"
        spec = tpl["spec"]
        vols = [v for v in spec.get("volumes", []) if v.get("secret", {}).get("secretName") == t["secretName"]]
        check(f"{n}: TLS Secret volume, mode 0444 (only the sidecar mounts it)", len(vols) == 1 and vols[0]["secret"].get("defaultMode") == 0o444,
              str(vols))
        sc = sidecar(tpl)
        mounts = [m for m in sc.get("volumeMounts", []) if vols and m["name"] == vols[0]["name"]]
        check(f"{n}: TLS Secret mounted as a directory (no subPath: renewals reload)",
              len(mounts) == 1 and "subPath" not in mounts[0] and mounts[0]["mountPath"].rstrip("/") == mount,
              str(mounts))
        for c in spec.get("containers", []):
            if c is sc:
                continue
            for probe in ("livenessProbe", "readinessProbe"):
                hg = (c.get(probe) or {}).get("httpGet") or {}
                if str(hg.get("port")) == str(values.get("ports", {}).get("proxy", 8080)):
                    check(f"{n}: {c['name']} {probe} through the TLS proxy port uses HTTPS",
                          hg.get("scheme") == "HTTPS", str(hg))


def check_lifecycle(n, tpl, c, policy):
    """The native/classic form and the termination timing against the rendered policy's drain
    delay D and grace G (docs/runbook.md): the app's preStop sleep keeps it serving while the
    proxy may still forward to it, and terminationGracePeriodSeconds covers all of it."""
    spec = tpl["spec"]
    native = any(x is c for x in spec.get("initContainers", []))
    d = policy_int(policy, "drain_delay_seconds", 5)
    g = policy_int(policy, "shutdown_grace_seconds", 10)
    t = spec.get("terminationGracePeriodSeconds", 30)
    apps = [x for x in spec["containers"] if x is not c]
    sleeps = [((x.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
              for x in apps]
    s = max(sleeps, default=0)
    if native:
        check(f"{n} native sidecar: initContainers entry with restartPolicy Always, startup probe on /readyz",
              c.get("restartPolicy") == "Always"
              and (c.get("startupProbe") or {}).get("httpGet", {}).get("path") == "/readyz",
              str({k: c.get(k) for k in ("restartPolicy", "startupProbe")}))
        check(f"{n} app preStop sleep {sleeps} >= drain_delay_seconds {d} (the proxy drains only after the app exits)",
              all(x >= d for x in sleeps if x))
        need = s + d + g
    else:
        check(f"{n} classic sidecar: a containers entry without restartPolicy",
              "restartPolicy" not in c and not spec.get("initContainers"))
        check(f"{n} app preStop sleep {sleeps} >= drain {d} + grace {g} (the proxy may forward until then)",
              all(x >= d + g for x in sleeps if x))
        need = max(s, d + g)
    check(f"{n} terminationGracePeriodSeconds {t} > {need} (drain {d}, grace {g}, app sleep {s}, "
          f"{'native' if native else 'classic'})", t > need)


def kubernetes_validate(case, files):
    r = subprocess.run(["kubernetes-validate", "--strict", "-k", KUBE, *map(str, files)],
                       capture_output=True, text=True)
    out = (r.stdout + r.stderr).strip().splitlines()
    bad = [l for l in out if not l.startswith("INFO")
           and not any(f"kind {k} " in l for k in CRD_KINDS)]
    check(f"{case}: kubernetes-validate --strict -k {KUBE} ({len(files)} objects)",
          r.returncode == 0 and not bad, "\n".join(bad or out[-5:]))


def make_test_pki(d):
    """A throwaway CA and a leaf it signed (openssl), as PEM files in d."""
    d.mkdir(parents=True, exist_ok=True)
    run = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=chart-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=sigproxy")
    (d / "ext").write_text("subjectAltName=DNS:sigproxy\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", "2",
        "-out", "leaf.crt", "-days", "2", "-extfile", "ext")
    return d


def check_config(case, sigproxy, cm, docs, work):
    """Lay the ConfigMap and keys Secret out as the kubelet mounts them and run check-config."""
    cfg_dir, key_dir = work / "config", work / "keys"
    cfg_dir.mkdir(parents=True)
    key_dir.mkdir()
    for k, v in cm["data"].items():
        (cfg_dir / k).write_text(v)
    policy = yaml.safe_load(cm["data"]["policy.yaml"])
    for s in (d for d in docs if d["kind"] == "Secret"):
        for k, v in s.get("data", {}).items():
            (key_dir / k).write_bytes(base64.b64decode(v))
    # The pod mounts the Secret at keys.mountPath; here it is key_dir.
    kf = policy.get("key_files") or []
    text = cm["data"]["policy.yaml"]
    for pattern in kf:
        if pattern.endswith("/*.yaml"):
            text = text.replace(pattern, f"{key_dir}/*.yaml")
    # The TLS Secret and the upstream CA ConfigMap are the user's: stand in a test CA and leaf
    # made here, at the paths the chart mounts them.
    tls, up = policy.get("tls"), (policy.get("upstream_tls") or {}).get("ca_file")
    if tls or up:
        pem = make_test_pki(work / "pki")
        for key, made in [("cert_file", "leaf.crt"), ("key_file", "leaf.key"),
                          ("client_ca_file", "ca.crt")]:
            if tls and tls.get(key):
                text = text.replace(tls[key], str(pem / made))
        if up:
            text = text.replace(up, str(pem / "ca.crt"))
    (cfg_dir / "policy.yaml").write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNATURE_AUTH_")}
    r = subprocess.run([sigproxy, "check-config", str(cfg_dir / "policy.yaml")],
                       capture_output=True, text=True, env=env)
    overrides = sorted(k for k in cm["data"] if k != "policy.yaml")
    check(f"{case}: sigproxy check-config on the rendered policy"
          + (f" (+ overrides {', '.join(overrides)})" if overrides else ""),
          r.returncode == 0, (r.stdout + r.stderr).strip()[-2000:])
    if r.returncode == 0 and overrides:
        check(f"{case}: check-config reports each override key in force",
              all(f"{k}=" in r.stdout for k in overrides), r.stdout[:1500])
    want = len(policy.get("keys") or []) + sum(
        len(yaml.safe_load(p.read_text()) or []) for p in key_dir.glob("*.yaml"))
    m = re.search(r"^keys: (\d+)", r.stdout, re.M)
    check(f"{case}: check-config loaded all {want} keys (inline + key files from the Secret)",
          m is not None and int(m.group(1)) == want, m.group(0) if m else r.stdout[-500:])
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sigproxy", required=True, help="the sigproxy binary")
    ap.add_argument("--out", required=True, help="directory for the rendered objects")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="sigproxy-chart-"))

    # The consumer chart: this chart as a dependency, its sidecar included in the user's own pod.
    consumer = work / "consumer"
    shutil.copytree(HERE / "consumer", consumer)
    shutil.copytree(CHART, consumer / "charts" / "sigproxy")

    cases = [(f"values/{p.stem}", CHART, yaml.safe_load(p.read_text()) or {})
             for p in sorted((HERE / "values").glob("*.yaml"))]
    cases.append(("consumer chart (include)", consumer, {}))
    cases.append(("consumer chart (include, native sidecar)", consumer, {"sigproxy": {"sidecar": {"native": True}}}))

    print("\n-- environment variables the binary reads (from src/)")
    check(f"found them: {', '.join(sorted(BINARY_ENV))}",
          {"SIGPROXY_LOG", "SIGPROXY_CONFIG"} <= BINARY_ENV, "the extraction in binary_env_vars() broke")

    for case, chart, values in cases:
        print(f"\n-- {case}")
        rep = helm.lint(str(chart), values, strict=True, kube_version=f"v{KUBE}",
                        namespace="sigproxy", with_subcharts=True)
        msgs = [m for m in rep.get("messages", []) if m["severity"] >= 2]
        check(f"{case}: helm lint --strict", not rep.get("errors") and not msgs,
              str(rep.get("errors") or msgs))
        try:
            docs = render(chart, values)
        except helm.HelmError as e:
            check(f"{case}: render (install --dry-run=client)", False, str(e))
            continue
        kinds = sorted(d["kind"] for d in docs)
        check(f"{case}: render (install --dry-run=client): {', '.join(kinds)}", bool(docs))
        d_out = out / case.replace("/", "_").replace(" ", "_").replace("(", "").replace(")", "")
        d_out.mkdir()
        files = []
        for i, d in enumerate(docs):
            f = d_out / f"{i:02d}-{d['kind']}-{d['metadata']['name']}.yaml"
            f.write_text(yaml.safe_dump(d, sort_keys=False))
            files.append(f)
        kubernetes_validate(case, files)
        cm = check_invariants(case, docs)
        if cm:
            if chart == CHART:
                check_tls(case, docs, yaml.safe_load(cm["data"]["policy.yaml"]), values)
            check_config(case, a.sigproxy, cm, docs, work / d_out.name)

    print("\n-- changes that must and must not restart pods")
    base = render(CHART, {})
    changed = render(CHART, {"policy": {"mode": "required", "canary": {"percent": 50}},
                             "overrides": {"required": False, "canaryPercent": 10}})
    tpl = lambda docs: next(t for _, t in pod_specs(docs))
    cm = lambda docs: next(d for d in docs if d["kind"] == "ConfigMap")
    check("policy and override changes leave the pod template unchanged (no rollout)",
          tpl(base) == tpl(changed) and cm(base) != cm(changed))
    check("an image change does change the pod template",
          tpl(base) != tpl(render(CHART, {"image": {"tag": "0.2.0"}})))

    print("\n-- termination timing derived from the policy's drain (one place)")
    def pod(values):
        return tpl(render(CHART, values))["spec"]
    def app_sleep(spec):
        app = next(c for c in spec["containers"] if c["name"] == "app")
        return ((app.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds")
    for label, values, want_t, want_s in [
        ("defaults: D 5 + G 10 + margin 5; app sleeps D + G", {}, 20, 15),
        ("drain 20: the pod's grace follows", {"policy": {"drain_delay_seconds": 20}}, 35, 30),
        ("native: app sleeps D, then the proxy drains: 5 + 5 + 10 + 5", {"sidecar": {"native": True}}, 25, 5),
        ("explicit and sufficient: kept as given", {"termination": {"gracePeriodSeconds": 90}}, 90, 15),
        ("drain 0, no app sleep: G + margin", {"policy": {"drain_delay_seconds": 0},
                                               "termination": {"appPreStopSleepSeconds": 0}}, 15, None),
    ]:
        spec = pod(values)
        got = (spec["terminationGracePeriodSeconds"], app_sleep(spec))
        check(f"{label}: terminationGracePeriodSeconds {want_t}, app preStop sleep {want_s}",
              got == (want_t, want_s), f"got {got}")
    for label, values, want in [
        ("an explicit terminationGracePeriodSeconds shorter than drain + grace + margin",
         {"policy": {"drain_delay_seconds": 30}, "termination": {"gracePeriodSeconds": 30}},
         "termination.gracePeriodSeconds=30 is shorter than the shutdown it must cover: max(app preStop sleep 40, "
         "policy.drain_delay_seconds 30 + policy.shutdown_grace_seconds 10) + termination.marginSeconds 5 = 45"),
        ("the same in the native form",
         {"sidecar": {"native": True}, "termination": {"gracePeriodSeconds": 20}},
         "termination.gracePeriodSeconds=20 is shorter than the shutdown it must cover: app preStop sleep 5 + "
         "policy.drain_delay_seconds 5 + policy.shutdown_grace_seconds 10 + termination.marginSeconds 5"),
    ]:
        try:
            render(CHART, values)
            check(f"refuses {label}", False, "rendered without error")
        except helm.HelmError as e:
            check(f"refuses {label}, naming the keys and the sum", want in str(e), str(e)[:600])
    for label, kube, values, want in [
        ("native sidecar on Kubernetes 1.28", "v1.28.0", {"sidecar": {"native": True}},
         "sidecar.native needs Kubernetes >= 1.29"),
        ("an explicit app preStop sleep on Kubernetes 1.29 (no sleep action)", "v1.29.0",
         {"termination": {"appPreStopSleepSeconds": 15}}, "needs Kubernetes >= 1.30"),
        ("nothing: classic form on Kubernetes 1.28, no sleep action, grace D + G + margin", "v1.28.0", {}, None),
    ]:
        # Only lint takes a Kubernetes version, and lint runs `fail` in its lint mode: it logs
        # the message (on the Go side's stderr) instead of failing. Run it in a child process
        # and read that log.
        r = subprocess.run([sys.executable, "-c", LINT_AT_VERSION, str(CHART), kube, json.dumps(values)],
                           capture_output=True, text=True)
        fails = re.findall(r'funcMap fail message="([^"]*)"', r.stderr)
        if want:
            check(f"Kubernetes {kube}: the chart refuses {label}",
                  any(want in f for f in fails), (r.stdout + r.stderr)[-600:])
        else:
            check(f"Kubernetes {kube}: the chart renders {label}",
                  r.returncode == 0 and not fails and "errors: []" in r.stdout, (r.stdout + r.stderr)[-600:])

    # A parent chart still including the classic entry alone while asking for the native form.
    old_style = work / "consumer-old-style"
    shutil.copytree(consumer, old_style)
    dep = old_style / "templates" / "deployment.yaml"
    dep.write_text(dep.read_text().replace('"sigproxy.containers"', '"sigproxy.container"'))
    try:
        render(old_style, {"sigproxy": {"sidecar": {"native": True}}})
        check("refuses sidecar.native with the classic-only sigproxy.container include", False,
              "rendered without error")
    except helm.HelmError as e:
        check("refuses sidecar.native with the classic-only sigproxy.container include, saying what to include",
              'include "sigproxy.initContainers" under initContainers' in str(e), str(e)[:600])

    print("\n-- values the schema must refuse")
    for label, bad in [
        ('mode: off unquoted (YAML 1.1 reads false)', {"policy": {"mode": False}}),
        ("unknown policy key", {"policy": {"mode": "hybrid", "bogus": 1}}),
        ("canary percent 150", {"overrides": {"canaryPercent": 150}}),
        ("key file not named *.yaml", {"keys": {"files": {"keys.txt": []}}}),
        ("route without path_prefix", {"policy": {"routes": [{"mode": "required"}]}}),
    ]:
        try:
            render(CHART, bad)
            check(f"schema refuses {label}", False, "rendered without error")
        except helm.HelmError as e:
            check(f"schema refuses {label}", "schema" in str(e).lower() or "values" in str(e).lower(), str(e)[:300])

    print("\n-- several pods with the per-pod (memory) replay store (issue 20)")
    for label, vals in [
        ("deployment.replicas: 2", {"deployment": {"replicas": 2}}),
        ("an HPA", {"autoscaling": {"enabled": True}}),
        ("deployment.replicas: 3, nonce optional", {"deployment": {"replicas": 3},
                                                   "policy": {"signature": {"nonce": "optional"}}}),
    ]:
        try:
            render(CHART, vals)
            check(f"chart refuses {label} with the memory replay store", False, "rendered without error")
        except helm.HelmError as e:
            msg = str(e)
            check(f"chart refuses {label} with the memory replay store, naming both ways out",
                  "policy.replay.store: memory" in msg and "policy.replay.redis_url" in msg
                  and "replayStore.acknowledgePerPodReplay: true" in msg, msg[:800])
    for label, vals in [
        ("one pod", {}),
        ("2 replicas with nonces off (nothing to replay-check)",
         {"deployment": {"replicas": 2}, "policy": {"signature": {"nonce": "off"}}}),
    ]:
        try:
            render(CHART, vals)
            check(f"chart renders {label} with the memory replay store", True)
        except helm.HelmError as e:
            check(f"chart renders {label} with the memory replay store", False, str(e)[:500])
    ack = yaml.safe_load((HERE / "values/replay-acknowledged.yaml").read_text())
    n = notes(CHART, ack)
    check("acknowledged per-pod replay protection: NOTES.txt warns, naming the pods and the way out",
          "WARNING: replay protection is per pod" in n and "deployment.replicas: 3" in n
          and "policy.replay.store: redis" in n, n)
    n = notes(CHART, yaml.safe_load((HERE / "values/production.yaml").read_text()))
    check("shared Redis replay store: NOTES.txt has no per-pod warning", "WARNING" not in n, n)
    docs = render(CHART, yaml.safe_load((HERE / "values/production.yaml").read_text()))
    cmap = next(d for d in docs if d["kind"] == "ConfigMap" and "policy.yaml" in d["data"])
    pol = yaml.safe_load(cmap["data"]["policy.yaml"])["replay"]
    pod = next(t for _, t in pod_specs(docs))
    mount = next((m for m in sidecar(pod)["volumeMounts"] if m["name"] == "sigproxy-redis"), {})
    vol = next((v for v in pod["spec"]["volumes"] if v["name"] == "sigproxy-redis"), {})
    check("Redis password and CA come from the Secret's mount, never the ConfigMap",
          pol.get("redis_password_file") == "/etc/sigproxy/redis/password"
          and pol.get("redis_ca_file") == "/etc/sigproxy/redis/ca.crt"
          and mount.get("readOnly") is True and mount.get("mountPath") == "/etc/sigproxy/redis"
          and (vol.get("secret") or {}).get("secretName") == "sigproxy-redis"
          and all(d["kind"] != "Secret" or "redis" not in d["metadata"]["name"] for d in docs),
          f"{pol} {mount} {vol}")

    print("\n-- check-config refuses what the schema cannot see")
    bad = render(CHART, {"policy": {"signature": {"required_components": ["@status"]}}})
    bad_dir = work / "bad"
    bad_dir.mkdir()
    (bad_dir / "policy.yaml").write_text(cm(bad)["data"]["policy.yaml"])
    r = subprocess.run([a.sigproxy, "check-config", str(bad_dir / "policy.yaml")],
                       capture_output=True, text=True)
    check("check-config exits 2 with file:line:col for a response-only component",
          r.returncode == 2 and "policy.yaml:" in r.stderr, (r.stdout + r.stderr)[-500:])

    shutil.rmtree(work, ignore_errors=True)
    print(f"\nchart: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
