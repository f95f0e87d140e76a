#!/usr/bin/env python3
"""Runs the same PromQL queries against Vigil's and Prometheus' query APIs and compares.

Usage: promql_compare.py VIGIL_URL PROMETHEUS_URL DATA_START DATA_END

Both servers hold the same OpenMetrics file, whose samples lie in [DATA_START, DATA_END]
(Unix seconds). Every query runs as an instant query and, where its type allows, as a range
query that runs past the data's end (the 5-minute lookback). Results must have the same
result type, the same series and the same values within floating-point tolerance. Prints
one line per difference and ends with "N passed, M failed"; exits 1 on any failure.
Python 3 standard library only.
"""
import json
import math
import sys
import urllib.error
import urllib.parse
import urllib.request

# (query, also as a range query?)
QUERIES = [
    # Selectors, matchers, offset, @, lookback.
    ("system_cpu_utilization_ratio", True),
    ('system_memory_usage_bytes{state="used"}', True),
    ('service_up{service!="sshd"}', True),
    ('system_filesystem_usage_bytes{mountpoint=~"/|/home"}', True),
    ('system_temperature_celsius{sensor!~"core.*"}', True),
    ("system_load_average_1m offset 10m", True),
    ("system_load_average_1m @ {at}", True),
    ('{__name__=~"system_memory.*"}', True),
    # Range functions.
    ("rate(system_network_io_bytes_total[5m])", True),
    ("irate(system_network_io_bytes_total[1m])", True),
    ("increase(system_disk_io_bytes_total[15m])", True),
    ("delta(system_temperature_celsius[10m])", True),
    ("idelta(system_uptime_seconds[5m])", True),
    ('deriv(system_filesystem_usage_bytes{state="used"}[30m])', True),
    ('predict_linear(system_filesystem_usage_bytes{state="used"}[1h], 3600)', True),
    ("avg_over_time(system_cpu_utilization_ratio[10m])", True),
    ("min_over_time(system_load_average_1m[30m])", True),
    ("max_over_time(system_temperature_celsius[30m])", True),
    ("sum_over_time(service_up[1h])", True),
    ("count_over_time(system_cpu_utilization_ratio[7m])", True),
    ("last_over_time(system_uptime_seconds[5m])", True),
    ("stddev_over_time(system_cpu_utilization_ratio[20m])", True),
    ("stdvar_over_time(system_load_average_1m[20m])", True),
    ("quantile_over_time(0.9, system_cpu_utilization_ratio[30m])", True),
    ("present_over_time(service_up[5m])", True),
    ("changes(service_up[1h])", True),
    ("resets(system_network_io_bytes_total[3h])", True),
    ("rate(system_network_io_bytes_total[5m] offset 30m)", True),
    ("absent_over_time(no_such_metric[5m])", True),
    ("rate(system_network_io_bytes_total[5m] @ {at})", True),
    ("max_over_time(system_temperature_celsius[10m] @ end())", True),
    ("count_over_time(system_cpu_utilization_ratio[7m] offset -5m)", True),
    ("min_over_time(system_load_average_1m[1h] @ start())", True),
    # Aggregations.
    ("sum(rate(system_network_io_bytes_total[5m])) by (host)", True),
    ("avg without (device, direction) (rate(system_disk_io_bytes_total[5m]))", True),
    ("min by (client) (system_cpu_utilization_ratio)", True),
    ("max(system_temperature_celsius) by (host)", True),
    ("count(service_up == 1) by (host)", True),
    ("topk(3, process_memory_rss_bytes) by (host)", False),
    ("bottomk(3, process_memory_rss_bytes)", False),
    ("stddev by (host) (system_temperature_celsius)", True),
    ("stdvar(system_load_average_1m)", True),
    ("quantile(0.5, system_cpu_utilization_ratio)", True),
    ("group by (host, client) (service_up)", True),
    ("sum(system_load_average_1m)", True),
    ("count(system_cpu_utilization_ratio)", True),
    # Binary operators and vector matching.
    ('system_memory_usage_bytes{state="used"} / on(host, client) system_memory_limit_bytes', True),
    ('system_filesystem_usage_bytes{state="used"} / ignoring(state) '
     '(system_filesystem_usage_bytes{state="used"} + ignoring(state) '
     'system_filesystem_usage_bytes{state="free"})', True),
    ("system_filesystem_usage_bytes / on(host, mountpoint) group_left system_filesystem_limit_bytes",
     True),
    ("system_memory_limit_bytes * on(host) group_right(client) system_memory_usage_bytes", True),
    ("system_cpu_utilization_ratio > {cpu_mid}", True),
    ("system_cpu_utilization_ratio > bool {cpu_mid}", True),
    ("{cpu_mid} < system_cpu_utilization_ratio", True),
    ("100 * system_cpu_utilization_ratio", True),
    ("system_load_average_1m - 1 < 0", True),
    ("service_up == bool 1", True),
    ("system_temperature_celsius >= on(host, sensor) system_temperature_celsius offset 5m", True),
    ("system_load_average_1m != bool ignoring(client) system_load_average_1m offset 1m", True),
    ("service_up and on(host) (system_cpu_utilization_ratio > {cpu_mid})", True),
    ('service_up unless service_up{service="sshd"}', True),
    ("system_load_average_1m or system_cpu_utilization_ratio", True),
    ("2 ^ 3 + 1", True),
    ("1 > bool 2", True),
    ("system_uptime_seconds % 3600", True),
    ("-system_load_average_1m", True),
    ("system_load_average_1m atan2 2", True),
    # Element-wise and other functions.
    ("abs(system_load_average_1m - 1)", True),
    ("ceil(system_load_average_1m)", True),
    ("floor(system_temperature_celsius)", True),
    ("round(system_temperature_celsius, 0.5)", True),
    ("round(system_load_average_1m)", True),
    ("clamp(system_cpu_utilization_ratio, 0.1, 0.5)", True),
    ("clamp_min(system_load_average_1m, 0.5)", True),
    ("clamp_max(system_load_average_1m, 0.5)", True),
    ("sqrt(system_load_average_1m)", True),
    ("time()", True),
    ("vector(1)", True),
    ("scalar(sum(system_load_average_1m))", True),
    ('absent(no_such_metric{host="x"})', True),
    ("absent(service_up)", True),
    ('label_replace(system_load_average_1m, "role", "$1", "host", "([a-z]+)-.*")', True),
    ("time() - system_uptime_seconds", True),
    ('"a string"', False),
    ("sort_desc(system_load_average_1m)", True),
    ("time() - timestamp(system_uptime_seconds)", True),
    ("timestamp(system_load_average_1m offset 1m)", True),
    ('label_join(system_load_average_1m, "host_client", "/", "host", "client")', True),
    ("minute(system_uptime_seconds) / 60 + scalar(hour())", True),
    ("day_of_week(system_uptime_seconds * 1000)", True),
    ("sin(system_load_average_1m) + deg(system_load_average_1m)", True),
]


def get(base, path, params):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def same_number(a, b):
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    return abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y))


def key(metric):
    return tuple(sorted(metric.items()))


def compare(vigil, prom):
    """None when equal, else a one-line reason."""
    if vigil.get("status") != prom.get("status"):
        return "status %s vs %s (%s)" % (
            vigil.get("status"), prom.get("status"), vigil.get("error") or prom.get("error"))
    if prom.get("status") != "success":
        return None
    vd, pd = vigil["data"], prom["data"]
    if vd["resultType"] != pd["resultType"]:
        return "resultType %s vs %s" % (vd["resultType"], pd["resultType"])
    kind = pd["resultType"]
    if kind == "string":
        return None if vd["result"] == pd["result"] else "string %s vs %s" % (vd["result"], pd["result"])
    if kind == "scalar":
        if vd["result"][0] != pd["result"][0] or not same_number(vd["result"][1], pd["result"][1]):
            return "scalar %s vs %s" % (vd["result"], pd["result"])
        return None
    field = "value" if kind == "vector" else "values"
    vs = {key(s["metric"]): s[field] for s in vd["result"]}
    ps = {key(s["metric"]): s[field] for s in pd["result"]}
    if len(vs) != len(vd["result"]):
        return "vigil returned a label set twice"
    if set(vs) != set(ps):
        only_v = sorted(set(vs) - set(ps))[:2]
        only_p = sorted(set(ps) - set(vs))[:2]
        return "series differ: %d vs %d; only vigil %s; only prometheus %s" % (
            len(vs), len(ps), only_v, only_p)
    for labels, pvalue in ps.items():
        vvalue = vs[labels]
        points_v = [vvalue] if kind == "vector" else vvalue
        points_p = [pvalue] if kind == "vector" else pvalue
        if len(points_v) != len(points_p):
            return "%s: %d points vs %d" % (dict(labels), len(points_v), len(points_p))
        for (tv, v), (tp, p) in zip(points_v, points_p):
            if float(tv) != float(tp) or not same_number(v, p):
                return "%s: [%s, %s] vs [%s, %s]" % (dict(labels), tv, v, tp, p)
    return None


def empty(answer):
    data = answer.get("data") or {}
    return data.get("resultType") in ("vector", "matrix") and not data.get("result")


def main():
    vigil, prom, data_start, data_end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    at = data_start + 3600
    instant_times = [data_start + 7207, data_end + 200, data_end + 400]
    range_params = {"start": data_start + 1800, "end": data_end + 600, "step": "60s"}
    # The CPU threshold is the fleet's median at the first instant: the generated load follows
    # the time of day, so a fixed threshold would select nobody at some hours of a run.
    median = get(prom, "/api/v1/query", {"query": "quantile(0.5, system_cpu_utilization_ratio)",
                                          "time": instant_times[0]})
    cpu_mid = "%.4f" % float(median["data"]["result"][0]["value"][1])
    passed = failed = 0
    for template, also_range in QUERIES:
        query = template.replace("{at}", str(at)).replace("{cpu_mid}", cpu_mid)
        runs = [("instant@%d" % t, "/api/v1/query", {"query": query, "time": t})
                for t in instant_times]
        if also_range:
            runs.append(("range", "/api/v1/query_range", dict(range_params, query=query)))
        for name, path, params in runs:
            prom_answer = get(prom, path, params)
            reason = compare(get(vigil, path, params), prom_answer)
            if reason is None and params.get("time") == instant_times[0] and empty(prom_answer) \
                    and "absent" not in query:
                reason = "empty on both sides: the query tests nothing"
            if reason is None:
                passed += 1
            else:
                failed += 1
                print("DIFF %-9s %s: %s" % (name, query, reason))
    # The listing endpoints must give the same lists.
    listings = [
        ("/api/v1/labels", {}),
        ("/api/v1/label/host/values", {}),
        ("/api/v1/label/service/values", {"match[]": 'service_up{host=~"web.*"}'}),
        ("/api/v1/series", {"match[]": "system_memory_limit_bytes"}),
        ("/api/v1/series", {"match[]": ['system_filesystem_limit_bytes{mountpoint="/"}',
                                        "system_uptime_seconds"]}),
    ]
    for path, params in listings:
        query = urllib.parse.urlencode(params, doseq=True)
        answers = [get(base, path + ("?" + query if query else ""), {}) for base in (vigil, prom)]
        data = [sorted(json.dumps(item, sort_keys=True) for item in answer.get("data") or [])
                for answer in answers]
        if answers[0].get("status") == "success" and data[0] == data[1] and data[0]:
            passed += 1
        else:
            failed += 1
            print("DIFF %s?%s: %s vs %s" % (path, query, answers[0], answers[1]))
    print("%d queries, %d passed, %d failed" % (len(QUERIES), passed, failed))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
