#!/usr/bin/env python3
"""Writes helm/sigproxy/files/dashboard.json, the Grafana dashboard for sigproxy (the metrics of
docs/reference.md §6). Edit here, run it, commit both: the JSON is generated so that panel ids and
grid positions stay consistent. Run from the repository root: python3
docs/monitoring/make_dashboard.py
"""
import json
import pathlib

SEL = 'namespace=~"$namespace", job=~"$job"'
DS = {"type": "prometheus", "uid": "${datasource}"}
panels = []


def panel(kind, title, targets, w, h, x, y, unit=None, desc="", **extra):
    p = {
        "id": len(panels) + 1,
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "targets": [
            {"refId": chr(65 + i), "expr": e, "legendFormat": lf, "datasource": DS}
            for i, (e, lf) in enumerate(targets)
        ],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
    }
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    for k, v in extra.items():
        if k == "defaults":
            p["fieldConfig"]["defaults"].update(v)
        else:
            p[k] = v
    panels.append(p)


def thresholds(*steps):
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


rate = lambda m, f="", w="5m": f"rate({m}{{{SEL}{f}}}[{w}])"
OK = ', status="success"'
VERIFIED = ', status!="skipped"'
FAIL = ', status="failure"'

# Row 1: the four numbers an on-call person looks at first.
panel("stat", "Auth success rate", [(
    f'sum({rate("datafold_auth_attempts_total", OK)}) / sum({rate("datafold_auth_attempts_total", VERIFIED)})',
    "success")], 6, 5, 0, 0, "percentunit",
    "Share of verified attempts (status != skipped: legacy and exempt requests are not verified) that succeeded, 5 m. Alert below 95%.",
    defaults={"min": 0, "max": 1, "decimals": 2,
              "thresholds": thresholds((None, "red"), (0.95, "orange"), (0.99, "green"))})
panel("gauge", "Migration progress", [(
    f"avg(datafold_migration_progress_percent{{{SEL}}})", "signed and valid")], 6, 5, 6, 0, "percent",
    "Share of non-exempt requests that were signed and valid (recent window).",
    defaults={"min": 0, "max": 100,
              "thresholds": thresholds((None, "red"), (50, "orange"), (95, "green"))})
panel("stat", "Canary (enforced share of hybrid callers)", [(
    f"max(datafold_canary_percent{{{SEL}}})", "canary")], 6, 5, 12, 0, "percent",
    "Effective canary percent after overrides and auto-halt. Rollout steps: 5, 10, 25, 50, 75, 100.",
    defaults={"min": 0, "max": 100, "thresholds": thresholds((None, "blue"))})
panel("stat", "Effective mode", [(
    f"count by (mode) (datafold_effective_mode{{{SEL}}} == 1)", "{{mode}}")], 6, 5, 18, 0, None,
    "The mode in force after overrides; the number is how many replicas run it. More than one "
    "mode means a ConfigMap change is still propagating (or a replica refused it: see reloads).",
    options={"textMode": "value_and_name", "colorMode": "background",
             "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
    defaults={"thresholds": thresholds((None, "purple"))})

# Row 2: traffic and latency.
panel("timeseries", "Auth attempts by method and status", [(
    f'sum by (method, status) ({rate("datafold_auth_attempts_total")})', "{{method}} {{status}}")],
    12, 8, 0, 5, "reqps")
panel("timeseries", "Latency (p50 / p95 / p99)", [
    (f'histogram_quantile(0.50, sum by (le) ({rate("datafold_auth_latency_seconds_bucket")}))', "auth p50"),
    (f'histogram_quantile(0.95, sum by (le) ({rate("datafold_auth_latency_seconds_bucket")}))', "auth p95"),
    (f'histogram_quantile(0.99, sum by (le) ({rate("datafold_auth_latency_seconds_bucket")}))', "auth p99"),
    (f'histogram_quantile(0.95, sum by (le) ({rate("datafold_upstream_latency_seconds_bucket")}))', "upstream p95"),
], 12, 8, 12, 5, "s", "Alert: auth p95 above 0.5 s for 5 m.",
    defaults={"thresholds": thresholds((None, "green"), (0.5, "red")),
              "custom": {"thresholdsStyle": {"mode": "dashed"}}})

# Row 3: why requests fail.
panel("timeseries", "Responses by code", [(
    f'sum by (code) ({rate("datafold_requests_total")})', "{{code}}")], 8, 8, 0, 13, "reqps")
panel("timeseries", "Invalid signatures by reason", [(
    f'sum by (reason) ({rate("datafold_invalid_signatures_total")})', "{{reason}}")], 8, 8, 8, 13, "reqps",
    "See docs/troubleshooting.md for each reason.")
panel("timeseries", "Top failing clients", [(
    f'topk(10, sum by (client_id) ({rate("datafold_auth_attempts_total", FAIL)}))',
    "{{client_id}}")], 8, 8, 16, 13, "reqps")

# Row 4: rollout machinery.
panel("timeseries", "Migration progress and canary over time", [
    (f"avg(datafold_migration_progress_percent{{{SEL}}})", "progress"),
    (f"max(datafold_canary_percent{{{SEL}}})", "canary"),
], 8, 8, 0, 21, "percent", defaults={"min": 0, "max": 100})
panel("timeseries", "Config reloads by result", [(
    f'sum by (result) (increase(datafold_config_reloads_total{{{SEL}}}[$__rate_interval]))', "{{result}}")],
    8, 8, 8, 21, "short", "A failure means the change was refused and the last good policy still serves.")
panel("timeseries", "Replay attempts and active keys", [
    (f'sum by (client_id) ({rate("datafold_replay_attempts_total")})', "replays {{client_id}}"),
    (f"max(datafold_active_keys_total{{{SEL}}})", "active keys"),
], 8, 8, 16, 21, "short")


def var(name, label, query):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": name}, "definition": query,
        "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
        "current": {"text": "All", "value": "$__all"}, "sort": 1,
    }


dashboard = {
    "uid": "sigproxy-overview",
    "title": "sigproxy — signature auth migration",
    "description": "RFC 9421 signature verification sidecar: success rate, latency, migration progress, canary, effective mode, reloads.",
    "tags": ["sigproxy", "datafold", "rfc9421"],
    "timezone": "utc",
    "editable": True,
    "schemaVersion": 39,
    "version": 1,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0},
        var("namespace", "Namespace", "label_values(datafold_auth_attempts_total, namespace)"),
        var("job", "Job", 'label_values(datafold_auth_attempts_total{namespace=~"$namespace"}, job)'),
    ]},
    "annotations": {"list": [{
        "name": "Config reloads", "datasource": DS, "enable": True, "iconColor": "orange",
        "expr": f"changes(datafold_config_reloads_total{{{SEL}}}[2m]) > 0",
        "titleFormat": "policy reload ({{result}})",
    }]},
    "panels": panels,
}

out = pathlib.Path(__file__).resolve().parents[2] / "helm/sigproxy/files/dashboard.json"
out.write_text(json.dumps(dashboard, indent=2) + "\n")
print(f"wrote {out} ({len(panels)} panels)")
