"""Label Studio round trip against a real server (started once per session, own venv).

The server comes from ``$AUTOLABEL_LS_BIN`` or ``.venv-ls/bin/label-studio``
(``bash scripts/setup.sh --tests``); without it these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import autolabel as al
from autolabel import labelstudio as ls
from autolabel.cli import main as cli
from autolabel.config import CostProfile
from autolabel import formats
from autolabel.core import Results
from autolabel.formats import read_coco, write_coco
from autolabel.routing import fit_policy, route
from autolabel.matching import EDIT_KINDS
from autolabel.savings.edits import count_edits, edit_seconds

from ls_server import SERVER  # the server fixture is in conftest.py, shared with test_serve.py
from test_costfit import TRUE, annotator_seconds  # the simulated annotator and its known constants



@pytest.fixture
def client(server):
    return ls.Client(server.url, server.token, retries=2, backoff=0.05)


@pytest.fixture(scope="module")
def prelabels(coco150, yolov5n):
    return al.prelabel(coco150 / "instances.json", yolov5n, progress=False)


@pytest.fixture(scope="module")
def truth(coco150):
    """Ground truth without crowd regions: what an annotator submits."""
    gt = read_coco(coco150 / "instances.json")
    return replace(gt, detections=[d[~d.iscrowd] for d in gt])



def _submitted(d):
    """An annotation's result for the boxes of ``d``, written out here as Label Studio
    documents a rectangle region (``x, y, width, height`` in percent of the image), not
    by our writer."""
    w, h = d.image.width, d.image.height
    return [
        {
            "id": f"r{j}", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
            "original_width": w, "original_height": h,
            "value": {"x": 100 * x1 / w, "y": 100 * y1 / h, "width": 100 * (x2 - x1) / w,
                      "height": 100 * (y2 - y1) / h, "rotation": 0, "rectanglelabels": [label]},
        }
        for j, ((x1, y1, x2, y2), label) in enumerate(zip(d.xyxy.astype(float).tolist(), d.labels))
    ]


def _annotate(client, task_ids, truth, lead, keys=None):
    """Act as the annotator: submit the ground-truth boxes with the given lead time."""
    for key, tid in task_ids.items():
        if keys is None or key in keys:
            body = {"result": _submitted(truth[key]), "lead_time": lead[key], "was_cancelled": False}
            client.request("POST", f"/api/tasks/{tid}/annotations", body)


def _export(client, pid):
    """The project as the server's own JSON export writes it."""
    return client.request("GET", f"/api/projects/{pid}/export", params={"exportType": "JSON",
                                                                       "download_all_tasks": "true"})


def _all_tasks(client, pid):
    return list(ls.tasks(client, pid))


def test_round_trip_in_routing_order_recovers_the_annotators_constants(
    client, server, prelabels, truth, coco150, tmp_path
):
    routing = route(prelabels, fit_policy(prelabels, read_coco(coco150 / "instances.json")))
    review, scratch = routing.queue("review"), routing.queue("scratch")
    assert scratch and len(review) + len(scratch) == 150

    rep = ls.push(prelabels, "round trip", client=client, routing=routing, document_root=coco150.parent, chunk_size=64)
    assert (rep.created, rep.updated, rep.chunks) == (150, 0, 3)

    tasks = sorted(_all_tasks(client, rep.project_id), key=lambda t: t["id"])
    assert [t["data"]["key"] for t in tasks] == review + scratch  # imported in priority order
    assert [t["data"]["priority"] for t in tasks] == list(range(1, 151))
    assert [t["data"]["routing_review_rank"] for t in tasks[: len(review)]] == list(range(1, len(review) + 1))
    assert {t["data"]["routing_queue"] for t in tasks[len(review) :]} == {"scratch"}
    assert all(not t["predictions"] for t in tasks[len(review) :])  # scratch queue: no pre-labels
    for t in tasks[: len(review)]:
        (p,) = t["predictions"]
        d = prelabels[t["data"]["key"]]
        assert p["model_version"] == prelabels.model_id and len(p["result"]) == len(d)
        assert p["score"] == pytest.approx(float(d.scores.mean()) if len(d) else 0.0, abs=1e-6)
        assert sorted(r["score"] for r in p["result"]) == pytest.approx(sorted(d.scores.tolist()), abs=1e-6)
    # images are referenced as local files, and the server serves them
    url = tasks[0]["data"]["image"]
    assert url.startswith("/data/local-files/?d=coco-val-150/images/")
    req = urllib.request.Request(server.url + url, headers={"Authorization": f"Token {server.token}"})
    with urllib.request.urlopen(req) as r:
        assert r.read() == (coco150 / "images" / tasks[0]["data"]["key"]).read_bytes()

    # the savings module on the same files gives the expected edits
    pre_file = write_coco(prelabels, tmp_path / "prelabels.json")[0]
    gt_file = write_coco(truth, tmp_path / "truth.json")[0]
    edits = count_edits(read_coco(pre_file), read_coco(gt_file))
    expected = {k: dict(zip(EDIT_KINDS, map(int, c))) for k, c in zip(edits.images, edits.per_image_counts)}
    for k in scratch:
        expected[k] = {**dict.fromkeys(EDIT_KINDS, 0), "draw": len(truth[k])}
    lead = {k: annotator_seconds(c) for k, c in expected.items()}
    _annotate(client, rep.task_ids, truth, lead)

    # the server's own export of the annotations reads back as the submitted boxes
    exported = formats.read_labelstudio(_export(client, rep.project_id), class_names=truth.class_names,
                                        use="annotations")
    assert len(exported) == 150 and not exported.failures
    for d in exported:
        g = truth[d.image.key]
        assert (d.image.width, d.image.height) == (g.image.width, g.image.height) and sorted(d.labels) == sorted(g.labels)
        np.testing.assert_allclose(np.sort(d.xyxy, 0), np.sort(g.xyxy, 0), atol=1e-3)

    m = ls.pull("round trip", client=client, n_boot=200)
    rows = m.rows.set_index("image")
    assert len(rows) == 150 and rows.index.is_unique
    for k, c in expected.items():
        assert {e: int(rows.at[k, e]) for e in EDIT_KINDS} == c, k
    assert set(rows.index[~rows["prelabeled"]]) == set(scratch)
    assert rows["seconds"].to_dict() == pytest.approx(lead)

    fit = m.fit
    assert fit is not None and fit.n_rows == 150 and fit.r2 == pytest.approx(1.0, abs=1e-9)
    assert (fit.table["status"] == "fitted").all()
    for name, value in TRUE.items():
        assert fit.table.at[name, "estimate"] == pytest.approx(value, abs=1e-6), name
        assert fit.table.at[name, "ci_low"] == pytest.approx(value, abs=1e-6)
        assert fit.table.at[name, "ci_high"] == pytest.approx(value, abs=1e-6)
    base = m.baseline()
    assert base["scratch"]["rows"] == len(scratch) and base["prelabeled"]["rows"] == len(review)
    assert base["scratch"]["seconds_per_box"] == pytest.approx(
        sum(lead[k] for k in scratch) / sum(len(truth[k]) for k in scratch)
    )

    written = m.save(tmp_path / "pulled")
    profile = CostProfile.load(tmp_path / "pulled" / "cost_profile.yaml")
    for name, value in TRUE.items():
        assert getattr(profile, name) == pytest.approx(value, abs=1e-4)
    counts = rows[list(EDIT_KINDS)].to_numpy(np.float64)
    assert profile.review_passes == 0  # the savings arithmetic prices the measured time
    assert edit_seconds(counts, profile) == pytest.approx(rows["seconds"].to_numpy(), abs=1e-2)
    pulled = read_coco(next(p for p in written if p.endswith("annotations.json")))
    for d in pulled:
        g = truth[d.image.key]
        assert (d.image.width, d.image.height) == (g.image.width, g.image.height)
        np.testing.assert_allclose(np.sort(d.xyxy, 0), np.sort(g.xyxy, 0), atol=1e-3)
        assert sorted(d.labels) == sorted(g.labels)


def test_pushing_again_updates_and_never_duplicates(client, prelabels, coco150):
    order = sorted(d.image.key for d in prelabels)[:60]
    some = replace(prelabels, detections=[prelabels[k] for k in order])
    opts = dict(client=client, document_root=coco150.parent, chunk_size=25, order=order)
    first = ls.push(some, "idempotent", **opts)
    again = ls.push(some, "idempotent", **opts)
    assert (first.created, again.created, again.updated, again.unchanged) == (60, 0, 0, 60)
    assert again.task_ids == first.task_ids
    # stricter pre-labels: the tasks whose boxes change are updated in place
    strict = some.filter(conf=0.5)
    changed = {d.image.key for d, s in zip(some, strict) if len(d) != len(s)}
    third = ls.push(strict, "idempotent", **opts)
    assert 0 < len(changed) < 60 and (third.created, third.updated, third.unchanged) == (
        0,
        len(changed),
        60 - len(changed),
    )
    tasks = _all_tasks(client, first.project_id)
    assert len(tasks) == 60 and len({t["data"]["key"] for t in tasks}) == 60
    for t in tasks:
        (p,) = t["predictions"]
        assert len(p["result"]) == len(strict[t["data"]["key"]])


def test_pull_compares_with_the_prediction_the_annotator_started_from(client, prelabels, truth, coco150, tmp_path):
    keys = sorted(d.image.key for d in prelabels)[:12]
    subset = replace(prelabels, detections=[prelabels[k] for k in keys])
    a, b = replace(subset, model_id="model-a"), replace(subset.filter(conf=0.6), model_id="model-b")
    ids = ls.push(a, "two models", client=client, document_root=coco150.parent, order=keys).task_ids
    assert ls.push(b, "two models", client=client, document_root=coco150.parent, order=keys).updated == 12
    tasks = {t["data"]["key"]: t for t in _all_tasks(client, ls.client.get_project(client, "two models")["id"])}
    assert all(sorted(p["model_version"] for p in t["predictions"]) == ["model-a", "model-b"] for t in tasks.values())
    result = {k: _submitted(truth[k]) for k in keys}
    from_a = set(keys[:6])  # these annotators started from model A's boxes
    for k in keys:
        parent = next(p["id"] for p in tasks[k]["predictions"] if p["model_version"] == "model-a")
        body = {"result": result[k], "lead_time": 10.0, **({"parent_prediction": parent} if k in from_a else {})}
        client.request("POST", f"/api/tasks/{ids[k]}/annotations", body)

    def expected(pre):
        e = count_edits(pre, replace(truth, detections=[truth[k] for k in keys]))
        return {k: dict(zip(EDIT_KINDS, map(int, c))) for k, c in zip(e.images, e.per_image_counts)}

    exp_a, exp_b = expected(a), expected(b)
    assert exp_a != exp_b
    rows = ls.pull("two models", client=client, fit=False).rows.set_index("image")
    for k in keys:
        assert {e: int(rows.at[k, e]) for e in EDIT_KINDS} == (exp_a if k in from_a else exp_b)[k], k
    only_a = ls.pull("two models", client=client, model_version="model-a", fit=False).rows.set_index("image")
    for k in keys:
        assert {e: int(only_a.at[k, e]) for e in EDIT_KINDS} == exp_a[k], k


def test_an_interrupted_push_resumes_with_nothing_missing_and_nothing_twice(client, prelabels, coco150):
    class Interrupted(Exception):
        pass

    def stop_after_two(report):
        if report.chunks == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        ls.push(
            prelabels, "resumed", client=client, document_root=coco150.parent, chunk_size=20, on_chunk=stop_after_two
        )
    rep = ls.push(prelabels, "resumed", client=client, document_root=coco150.parent, chunk_size=20)
    assert (rep.created, rep.unchanged) == (110, 40)
    tasks = sorted(_all_tasks(client, rep.project_id), key=lambda t: t["id"])
    keys = [t["data"]["key"] for t in tasks]
    assert sorted(keys) == sorted(d.image.key for d in prelabels)  # nothing missing, nothing twice
    assert [t["data"]["priority"] for t in tasks] == list(range(1, 151))  # and still in priority order


class _LosingProxy(BaseHTTPRequestHandler):
    """Forwards to the real server, but the answer to the first import is lost (502)."""

    def _forward(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        keep = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type", "accept")}
        req = urllib.request.Request(self.server.upstream + self.path, data=body, method=self.command, headers=keep)
        try:
            with urllib.request.urlopen(req) as r:
                status, data = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        if self.command == "POST" and self.path.split("?")[0].endswith("/import") and self.server.lose > 0:
            self.server.lose -= 1  # the server did import; the client never hears it
            status, data = 502, b'{"detail": "upstream connection lost"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = _forward

    def log_message(self, *args):
        pass


class _Flaky(BaseHTTPRequestHandler):
    """Answers 503 ``server.failures`` times, then a JSON page."""

    def do_GET(self):
        self.server.hits += 1
        ok = self.server.hits > self.server.failures
        data = b'{"count": 0, "results": []}' if ok else b'{"detail": "busy"}'
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _serve(handler, **attrs):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for k, v in attrs.items():
        setattr(httpd, k, v)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def test_an_import_whose_answer_is_lost_is_not_repeated(server, prelabels, coco150):
    proxy = _serve(_LosingProxy, upstream=server.url, lose=1)
    try:
        c = ls.Client(f"http://127.0.0.1:{proxy.server_port}", server.token, retries=3, backoff=0.05)
        rep = ls.push(prelabels, "lost answer", client=c, document_root=coco150.parent, chunk_size=100)
    finally:
        proxy.shutdown()
    assert proxy.lose == 0 and (rep.created, rep.chunks) == (150, 2)
    keys = [t["data"]["key"] for t in _all_tasks(ls.Client(server.url, server.token), rep.project_id)]
    assert len(keys) == 150 and len(set(keys)) == 150


def test_5xx_answers_are_retried_with_backoff():
    flaky = _serve(_Flaky, hits=0, failures=2)
    try:
        c = ls.Client(f"http://127.0.0.1:{flaky.server_port}", "token-not-used", retries=3, backoff=0.05)
        t0 = time.monotonic()
        assert c.request("GET", "/api/projects") == {"count": 0, "results": []}
        assert flaky.hits == 3 and time.monotonic() - t0 >= 0.05 + 0.1
        flaky.hits, flaky.failures = 0, 99
        with pytest.raises(
            ls.LabelStudioUnavailable, match=rf"127\.0\.0\.1:{flaky.server_port}.*HTTP 503 busy.*tried 4 times"
        ):
            c.request("GET", "/api/projects")
        assert flaky.hits == 4
    finally:
        flaky.shutdown()


def test_a_server_that_is_down_gives_a_clear_error_after_retries(prelabels, caplog):
    port = SERVER.free_port()  # nothing listens there
    c = ls.Client(f"http://127.0.0.1:{port}", "secret-token-123", retries=2, backoff=0.05)
    t0 = time.monotonic()
    with pytest.raises(
        ls.LabelStudioUnavailable, match=rf"Label Studio at http://127\.0\.0\.1:{port} is unavailable.*tried 3 times"
    ):
        ls.push(prelabels, "never", client=c, image_url="http://images.example/")
    assert time.monotonic() - t0 >= 0.05 + 0.1
    assert "retry 2/2" in caplog.text and "secret-token-123" not in caplog.text


def test_a_wrong_token_is_an_authentication_error_and_is_never_shown(
    server, prelabels, coco150, tmp_path, monkeypatch, capsys
):
    with pytest.raises(ls.LabelStudioAuthError, match="rejected the API token: HTTP 401"):
        ls.push(prelabels, "never", url=server.url, token="wrong-token-abc", document_root=coco150.parent)
    pre = write_coco(prelabels, tmp_path / "pre.json")[0]
    monkeypatch.setenv("LABEL_STUDIO_URL", server.url)
    monkeypatch.setenv("MY_LS_TOKEN", "wrong-token-abc")
    code = cli(
        [
            "push",
            "--predictions",
            pre,
            "--project",
            "never",
            "--token-env",
            "MY_LS_TOKEN",
            "--image-root",
            str(coco150 / "images"),
            "--document-root",
            str(coco150.parent),
        ]
    )
    out = capsys.readouterr()
    assert code == 2 and "rejected the API token" in out.err and server.url in out.err
    assert "wrong-token-abc" not in out.out + out.err
    assert "wrong-token-abc" not in repr(ls.Client(server.url, "wrong-token-abc"))


def test_a_personal_access_token_works(client, server):
    pat = client.request("POST", "/api/token/", {})["token"]
    c = ls.Client(server.url, pat)
    assert isinstance(c.request("GET", "/api/projects")["count"], int)
    with pytest.raises(ls.LabelStudioAuthError):
        ls.Client(server.url, pat[:-4] + "AAAA").request("GET", "/api/projects")


def test_a_project_lacking_classes_is_an_error_listing_them_or_takes_a_mapping(client, prelabels, coco150):
    config = (
        '<View><Image name="img" value="$photo"/><RectangleLabels name="box" toName="img">'
        '<Label value="person"/><Label value="vehicle"/></RectangleLabels></View>'
    )
    pid = client.request("POST", "/api/projects", {"title": "two labels", "label_config": config})["id"]
    used = sorted({n for d in prelabels for n in d.labels})
    missing = [n for n in used if n != "person"]
    with pytest.raises(ls.LabelConfigError) as err:
        ls.push(prelabels, pid, client=client, document_root=coco150.parent)
    assert str(missing) in str(err.value) and "label_map" in str(err.value)
    assert not _all_tasks(client, pid)

    label_map = {n: ("vehicle" if n in ("car", "truck", "bus") else None) for n in missing}
    rep = ls.push(prelabels, pid, client=client, document_root=coco150.parent, label_map=label_map)
    assert rep.created == 150
    kept = {"person", "car", "truck", "bus"}
    for t in _all_tasks(client, pid):
        assert t["data"]["photo"].startswith("/data/local-files/")  # the project's own field and control names
        (p,) = t["predictions"]
        assert all(r["from_name"] == "box" and r["to_name"] == "img" for r in p["result"])
        assert len(p["result"]) == sum(n in kept for n in prelabels[t["data"]["key"]].labels)
        assert {r["value"]["rectanglelabels"][0] for r in p["result"]} <= {"person", "vehicle"}


def test_cli_push_then_pull(server, client, prelabels, truth, coco150, tmp_path, monkeypatch, capsys):
    pre = write_coco(prelabels, tmp_path / "pre.json")[0]
    monkeypatch.setenv("LABEL_STUDIO_URL", server.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", server.token)
    assert (
        cli(
            [
                "push",
                "--predictions",
                pre,
                "--project",
                "from the cli",
                "--image-root",
                str(coco150 / "images"),
                "--document-root",
                str(coco150.parent),
                "--chunk-size",
                "70",
            ]
        )
        == 0
    )
    pushed = json.loads(capsys.readouterr().out)
    assert (pushed["created"], pushed["chunks"]) == (150, 3)
    ids = {t["data"]["key"]: t["id"] for t in _all_tasks(client, pushed["project_id"])}
    done = sorted(ids)[:40]
    edits = count_edits(prelabels, truth)
    per = {k: dict(zip(EDIT_KINDS, map(int, c))) for k, c in zip(edits.images, edits.per_image_counts)}
    _annotate(client, ids, truth, {k: annotator_seconds(per[k]) for k in done}, keys=set(done))
    out = tmp_path / "pulled"
    assert cli(["pull", "--project", str(pushed["project_id"]), "--out", str(out), "--fix", "relabel_s=2.5"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 40 and summary["timed_rows"] == 40
    assert summary["fit"]["constants"]["relabel_s"]["status"] == "fixed"
    assert summary["edits"] == {e: sum(per[k][e] for k in done) for e in EDIT_KINDS}
    assert len(read_coco(out / "annotations.json")) == 40
    assert (out / "cost_profile.yaml").is_file() and (out / "edits.csv").is_file()


def test_bad_push_arguments_fail_before_any_request(prelabels, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    with pytest.raises(ValueError, match="no Label Studio URL: pass url= .* or set LABEL_STUDIO_URL"):
        ls.push(prelabels, "x", token="t")
    c = ls.Client("http://127.0.0.1:9", "t", retries=0)  # nothing listens: any request would fail differently
    key = prelabels[0].image.key
    with pytest.raises(ValueError, match=r"unknown: \['nope\.jpg'\], repeated: \[\]"):
        ls.push(prelabels, "x", client=c, order=["nope.jpg"])
    with pytest.raises(ValueError, match=rf"unknown: \[\], repeated: \['{key}'\]"):
        ls.push(prelabels, "x", client=c, order=[key, key])
    with pytest.raises(ValueError, match="without_prelabels names images not in the pre-labels"):
        ls.push(prelabels, "x", client=c, without_prelabels=["nope.jpg"])
    with pytest.raises(ValueError, match="give routing= or order="):
        ls.push(prelabels, "x", client=c, routing="manifest.csv", order=[key])
    with pytest.raises(TypeError, match=r"push\(\) got unknown options: 'chunksize' \(did you mean 'chunk_size'"):
        ls.push(prelabels, "x", client=c, chunksize=10)
    with pytest.raises(ValueError, match=r"chunk_size\n.*greater than or equal to 1"):
        ls.push(prelabels, "x", client=c, chunk_size=0)
    with pytest.raises(ValueError, match=r"unknown queues \['reveiw'\]"):
        ls.PushOptions(routing="manifest.csv", queues=["reveiw"])
    with pytest.raises(ValueError, match="give routing= or order="):  # an options object with keywords on top
        ls.push(prelabels, "x", client=c, options=ls.PushOptions(order=[key]), routing="manifest.csv")


def test_certified_boxes_are_marked_so_annotators_can_tell_them_apart(client, server, prelabels, coco150):
    keys = [d.image.key for d in prelabels if len(d) >= 3][:5]
    dets = [replace(prelabels[k], data={"certified": prelabels[k].scores >= 0.6}) for k in keys]
    res = Results(dets, prelabels.class_names, prelabels.model_id)
    assert 0 < sum(int(d.data["certified"].sum()) for d in dets) < res.num_boxes
    rep = ls.push(res, "certified", client=client, document_root=coco150.parent, order=keys)
    tasks = _all_tasks(client, rep.project_id)
    assert len(tasks) == 5
    for t in tasks:  # as the server stores them (its JSON export lists predictions by id only)
        (p,) = t["predictions"]
        d = res[t["data"]["key"]]
        got = sorted((round(r["score"], 5), r["meta"]["certified"]) for r in p["result"])
        assert got == sorted(zip(np.round(d.scores.astype(float), 5).tolist(), d.data["certified"].tolist()))
        assert all(r["meta"].get("text") == (["certified"] if r["meta"]["certified"] else None) for r in p["result"])


def test_a_routing_manifest_pushes_only_the_policys_prelabels(client, prelabels, coco150, tmp_path, capsys):
    from autolabel.config import RoutingPolicy

    policy = fit_policy(prelabels, read_coco(coco150 / "instances.json"),
                        RoutingPolicy.load({**RoutingPolicy.load("default").model_dump(), "prelabel_conf": 0.5}))
    pre = write_coco(prelabels, tmp_path / "pre.json")[0]
    policy.save(tmp_path / "policy.json")
    assert cli(["route", "--predictions", pre, "--policy", str(tmp_path / "policy.json"), "--out",
                str(tmp_path / "routed")]) == 0
    capsys.readouterr()
    manifest = tmp_path / "routed" / "manifest.csv"
    assert json.loads((tmp_path / "routed" / "summary.json").read_text())["prelabel_conf"] == 0.5
    assert any((d.scores < 0.5).any() for d in prelabels)  # the file holds boxes that are not pre-labels
    rep = ls.push(prelabels, "manifest", client=client, routing=manifest, queues=["review"],
                  document_root=coco150.parent)
    scores = [r["score"] for t in _all_tasks(client, rep.project_id) for p in t["predictions"] for r in p["result"]]
    assert rep.created > 0 and scores and min(scores) >= 0.5

    # a manifest that does not say its threshold is refused before any request
    bare = tmp_path / "bare" / "manifest.csv"
    bare.parent.mkdir()
    bare.write_bytes(manifest.read_bytes())
    offline = ls.Client("http://127.0.0.1:9", "t", retries=0)
    with pytest.raises(ValueError, match="pre-label threshold.*prelabel_conf="):
        ls.push(prelabels, "x", client=offline, routing=bare)
    rep = ls.push(prelabels, "manifest", client=client, routing=bare, queues=["review"], prelabel_conf=0.5,
                  document_root=coco150.parent)
    assert rep.created == 0 and rep.updated == 0  # the same pre-labels as before

