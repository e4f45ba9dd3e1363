"""``autolabel serve`` as Label Studio's ML backend, against the real Label Studio server.

The round trip connects the served backend to a project through Label Studio's own API
(``/api/ml``), asks Label Studio to retrieve predictions for 20 coco-val-150 tasks (the
data manager's ``retrieve_tasks_predictions`` action, what "Retrieve predictions" in the
UI sends), and compares what Label Studio stored with ``autolabel prelabel`` on the same
images. The server fixture is in ``conftest.py`` (shared with ``test_labelstudio.py``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_process import start_serve, stop_serve

import autolabel as al
from autolabel import labelstudio as ls
from autolabel.labelstudio.client import tasks as project_tasks
from autolabel.labelstudio.push import _local_files_prefix
from autolabel.cli import main as cli
from autolabel.formats import labelstudio_config, read_coco
from autolabel.routing import fit_policy, route
from autolabel.serve import Backend, ImageAccess, LabelConfigMismatch, create_app, parse_label_config


ROOT = Path(__file__).resolve().parent.parent
N = 20

# a project whose control and image names are not the writer's defaults ("label", "image")
CONFIG = '<View><Image name="photo" value="$img"/><RectangleLabels name="boxes" toName="photo">{}</RectangleLabels></View>'


def _config(names):
    return CONFIG.format("".join(f'<Label value="{n}"/>' for n in names))


@pytest.fixture(scope="module")
def keys(coco150):
    return sorted(p.name for p in (coco150 / "images").glob("*.jpg"))[:N]


@pytest.fixture(scope="module")
def backend(server, coco150, tmp_path_factory):
    """``autolabel serve`` in its own process, on the default host, reading local files from disk."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "LABEL_STUDIO_API_KEY": server.token, "PYTHONPATH": str(ROOT)}
    proc, url = start_serve(["--label-studio-url", server.url, "--document-root", str(coco150.parent)], log, env)
    yield url, log
    stop_serve(proc)


def _project(client, title, names, coco150, keys):
    pid = client.request("POST", "/api/projects", {"title": title, "label_config": _config(names)})["id"]
    prefix = _local_files_prefix(client, pid, str(coco150 / "images"), str(coco150.parent))
    client.request("POST", f"/api/projects/{pid}/import", [{"img": prefix + k} for k in keys])
    return pid


@pytest.fixture(scope="module")
def expected(keys, coco150, tmp_path_factory):
    """``autolabel prelabel`` (the command) on the same 20 images."""
    folder = tmp_path_factory.mktemp("images")
    for k in keys:
        (folder / k).symlink_to(coco150 / "images" / k)
    out = tmp_path_factory.mktemp("prelabel")
    assert cli(["prelabel", str(folder), "--out", str(out), "--quiet"]) == 0
    return read_coco(out / "annotations.json")


def test_label_studio_retrieves_served_predictions_equal_to_prelabel(server, backend, coco150, keys, expected, yolov5n):
    url, log = backend
    client = ls.Client(server.url, server.token, retries=2, backoff=0.05)
    pid = _project(client, "served", yolov5n.class_names, coco150, keys)
    ml = client.request("POST", "/api/ml", {"url": url, "project": pid, "title": "autolabel"})
    assert ml["state"] == "CO", ml  # connected: /health and /setup answered
    client.request(
        "POST", "/api/dm/actions", {"selectedItems": {"all": True, "excluded": []}},
        params={"id": "retrieve_tasks_predictions", "project": pid},
    )
    tasks = list(project_tasks(client, pid))
    assert len(tasks) == N
    for t in tasks:
        key = t["data"]["img"].rsplit("/", 1)[1]
        (p,) = t["predictions"]
        assert p["model_version"] == yolov5n.model_id
        d = expected[key]
        assert len(p["result"]) == len(d), key
        assert all(r["from_name"] == "boxes" and r["to_name"] == "photo" for r in p["result"])
        got = sorted(
            (r["value"]["rectanglelabels"][0], r["score"], *(r["value"][c] for c in ("x", "y", "width", "height")))
            for r in p["result"]
        )
        w, h = d.image.width, d.image.height
        x1, y1, x2, y2 = d.xyxy.astype(np.float64).T
        want = sorted(zip(d.labels, d.scores.tolist(), 100 * x1 / w, 100 * y1 / h, 100 * (x2 - x1) / w, 100 * (y2 - y1) / h))
        assert [g[0] for g in got] == [e[0] for e in want], key
        np.testing.assert_allclose([g[1] for g in got], [e[1] for e in want], atol=1e-6)
        np.testing.assert_allclose([g[2:] for g in got], [e[2:] for e in want], atol=0.01)  # 0.01 % of the image
        assert all((r["original_width"], r["original_height"]) == (w, h) for r in p["result"])
    assert sum(len(t["predictions"][0]["result"]) for t in tasks) == expected.num_boxes > 100
    assert server.token not in log.read_text()  # the token the backend reads images with is never logged


def test_a_20_task_batch_takes_less_than_1_5x_prelabel(backend, coco150, keys, yolov5n, tmp_path, capsys):
    url, _ = backend
    tasks = [{"id": i, "data": {"img": f"/data/local-files/?d=coco-val-150/images/{k}"}} for i, k in enumerate(keys)]
    body = {"tasks": tasks, "label_config": _config(yolov5n.class_names), "project": "1.0"}
    folder = tmp_path / "images"
    folder.mkdir()
    for k in keys:
        (folder / k).symlink_to(coco150 / "images" / k)
    httpx.post(url + "/predict", json=body, timeout=120)  # warm both sides once
    served, local = [], []
    for i in range(3):  # interleaved, best of 3: the machine is shared
        t0 = time.perf_counter()
        r = httpx.post(url + "/predict", json=body, timeout=120)
        served.append(time.perf_counter() - t0)
        assert r.status_code == 200 and all("result" in p for p in r.json()["results"])
        t0 = time.perf_counter()
        assert cli(["prelabel", str(folder), "--out", str(tmp_path / f"out{i}"), "--quiet"]) == 0
        local.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    al.prelabel(sorted(folder.iterdir()), yolov5n, progress=False)  # for the record: the warm API, no model load or files
    api = time.perf_counter() - t0
    ratio = min(served) / min(local)
    with capsys.disabled():
        print(f"\n20-task /predict {min(served):.3f} s, autolabel prelabel {min(local):.3f} s: ratio {ratio:.2f} "
              f"(vs the warm al.prelabel API {api:.3f} s: {min(served) / api:.2f}; best of 3 on a shared machine)")
    assert ratio < 1.5


def test_a_project_without_the_models_labels_is_refused_with_them_named(server, backend, coco150, keys):
    url, log = backend
    client = ls.Client(server.url, server.token, retries=0)
    pid = _project(client, "two labels", ["person", "vehicle"], coco150, keys[:2])
    with pytest.raises(ls.LabelStudioError, match="422"):
        client.request("POST", "/api/ml", {"url": url, "project": pid, "title": "autolabel"})
    r = httpx.post(url + "/setup", json={"project": f"{pid}.0", "schema": _config(["person", "vehicle"])})
    assert r.status_code == 422
    assert "lacks 79 of the model's 80 classes" in r.json()["error"] and "'bicycle'" in r.json()["error"]
    assert "lacks 79 of the model's 80 classes" in log.read_text()


def _client(backend_obj, **kw):
    from fastapi.testclient import TestClient

    return TestClient(create_app(backend_obj, **kw))


def test_images_come_only_from_the_label_studio_host_or_local_files(server, coco150, keys, yolov5n, caplog):
    local = f"/data/local-files/?d=coco-val-150/images/{keys[0]}"
    tasks = [
        {"id": 1, "data": {"img": local}},  # relative: fetched from the server over HTTP with its token
        {"id": 2, "data": {"img": server.url + local}},  # absolute on the same host
        {"id": 3, "data": {"img": "http://192.0.2.1:8080" + local}},  # another host
        {"id": 4, "data": {"img": "file:///etc/passwd"}},
        {"id": 5, "data": {"img": "images/" + keys[0]}},
    ]
    body = {"tasks": tasks, "label_config": _config(yolov5n.class_names)}
    # Label Studio serves local files only under a registered local-files storage
    _project(ls.Client(server.url, server.token), "fetched over http", yolov5n.class_names, coco150, keys[:1])
    caplog.set_level("INFO")
    over_http = Backend(yolov5n, images=ImageAccess(server.url, server.token))
    out = _client(over_http).post("/predict", json=body).json()["results"]
    want = al.prelabel([coco150 / "images" / keys[0]], yolov5n, progress=False)[0]
    for p in out[:2]:
        assert sorted(r["score"] for r in p["result"]) == pytest.approx(sorted(want.scores.tolist()), abs=1e-6)
    assert "not on the Label Studio host" in out[2]["error"] and "not on the Label Studio host" in out[3]["error"]
    assert "neither a Label Studio URL nor local files" in out[4]["error"]
    assert server.token not in caplog.text

    on_disk = Backend(yolov5n, images=ImageAccess(document_root=coco150.parent))
    escape = [{"id": 1, "data": {"img": "/data/local-files/?d=../../../etc/passwd"}}, {"id": 2, "data": {"img": local}}]
    out = _client(on_disk).post("/predict", json={**body, "tasks": escape}).json()["results"]
    assert "outside the document root" in out[0]["error"] and len(out[1]["result"]) == len(want)

    no_token = Backend(yolov5n, images=ImageAccess(server.url, None))
    out = _client(no_token).post("/predict", json={**body, "tasks": tasks[:1]}).json()["results"]
    assert "HTTP 40" in out[0]["error"]  # the server refuses an unauthenticated download
    # the token Label Studio hands over in /setup (its access_token) is used when none was configured
    ok = _client(no_token).post("/setup", json={"project": "9.0", "schema": body["label_config"],
                                                "hostname": "http://192.0.2.1:8080", "access_token": server.token})
    assert ok.status_code == 200
    out = _client(no_token).post("/predict", json={**body, "tasks": tasks[:1]}).json()["results"]
    assert len(out[0]["result"]) == len(want)  # and the configured host is kept, not the one /setup names


def test_per_class_thresholds_class_map_and_region_names(coco150, keys, yolov5n):
    images = ImageAccess(document_root=coco150.parent)
    tasks = [{"id": i, "data": {"img": f"/data/local-files/?d=coco-val-150/images/{k}"}} for i, k in enumerate(keys)]
    pre = al.prelabel([coco150 / "images" / k for k in keys], yolov5n, conf=0.25, progress=False)
    df = pre.to_pandas()
    keep = df[(df["label"] != "person") | (df["score"] >= 0.6)]
    want = keep.groupby("image")["score"].apply(lambda s: sorted(s.tolist())).to_dict()
    strict = Backend(yolov5n, conf={"person": 0.6}, images=images)
    out = _client(strict).post("/predict", json={"tasks": tasks, "label_config": _config(yolov5n.class_names)}).json()
    for k, p in zip(keys, out["results"]):
        assert sorted(r["score"] for r in p["result"]) == pytest.approx(want.get(k, []), abs=1e-6), k
    assert any(r["value"]["rectanglelabels"] == ["person"] for p in out["results"] for r in p["result"])

    mapped = Backend(yolov5n, class_map={"mapping": {"car": "vehicle", "truck": "vehicle", "bus": "vehicle", "person": "person"}},
                     images=images)
    config = _config(["person", "vehicle"])
    out = _client(mapped).post("/predict", json={"tasks": tasks, "label_config": config}).json()["results"]
    labels = {r["value"]["rectanglelabels"][0] for p in out for r in p["result"]}
    assert labels == {"person", "vehicle"}
    n_vehicle = sum(r["value"]["rectanglelabels"] == ["vehicle"] for p in out for r in p["result"])
    assert 0 < n_vehicle <= int(df["label"].isin(["car", "truck", "bus"]).sum())

    with pytest.raises(ValueError, match=r"yolov5n does not have: 'zebra crossing'.*80 classes: person, bicycle"):
        Backend(yolov5n, conf={"zebra crossing": 0.5})
    with pytest.raises(ValueError, match=r"with its class map does not have: 'car'.*2 classes: person, vehicle$"):
        Backend(yolov5n, conf={"car": 0.5}, class_map={"mapping": {"car": "vehicle", "person": "person"}})


def test_a_long_batch_returns_what_is_done_and_leaves_the_rest(coco150, keys, yolov5n, caplog):
    det = al.load_detector("yolov5n.onnx", batch_size=4)
    tasks = [{"id": i, "data": {"img": f"/data/local-files/?d=coco-val-150/images/{k}"}} for i, k in enumerate(keys)]
    caplog.set_level("INFO", logger="autolabel.serve")
    b = Backend(det, images=ImageAccess(document_root=coco150.parent), time_limit=1e-6)
    out = b.predict(tasks, _config(det.class_names))
    assert len(out) == N  # one entry per task, as Label Studio requires
    done = [p for p in out if "result" in p]
    assert len(done) == 4 and all("result" in p for p in out[:4])  # the first inference batch
    assert all("time limit" in p["error"] for p in out[4:])
    assert "batch: 4/20 tasks" in caplog.text and "16 left for the next request" in caplog.text


def test_routing_scores_ride_with_the_predictions(coco150, keys, yolov5n):
    gt = read_coco(coco150 / "instances.json")
    calib = sorted(d.image.key for d in gt)[N : N + 60]
    pre = al.prelabel([coco150 / "images" / k for k in calib], yolov5n, progress=False)
    policy = fit_policy(pre, type(gt)([gt[k] for k in calib], gt.class_names))
    b = Backend(yolov5n, policy=policy, images=ImageAccess(document_root=coco150.parent))
    tasks = [{"id": i, "data": {"img": f"/data/local-files/?d=coco-val-150/images/{k}"}} for i, k in enumerate(keys)]
    out = _client(b).post("/predict", json={"tasks": tasks, "label_config": _config(yolov5n.class_names)}).json()["results"]
    mine = al.prelabel([coco150 / "images" / k for k in keys], yolov5n, conf=policy.config.evidence_conf, progress=False)
    manifest = route(mine, policy).manifest.set_index("file_name")
    for k, p in zip(keys, out):
        assert p["routing"]["queue"] == manifest.at[k, "queue"], k
        assert p["routing"]["p_no_edit"] == pytest.approx(manifest.at[k, "p_no_edit"], abs=1e-6)
        shown = mine[k].filter(policy.config.prelabel_conf)
        assert sorted(r["score"] for r in p["result"]) == pytest.approx(sorted(shown.scores.tolist()), abs=1e-6)
    assert {p["routing"]["queue"] for p in out} <= {"auto_accept", "review", "scratch"}


def test_basic_auth_and_the_protocol_routes(yolov5n):
    b = Backend(yolov5n)
    c = _client(b, basic_auth=("ls", "s3cret"))
    assert c.get("/health").status_code == 401
    assert c.get("/health", auth=("ls", "wrong")).status_code == 401
    assert c.get("/health", auth=("ls", "s3cret")).json()["model_version"] == yolov5n.model_id
    ok = c.post("/setup", auth=("ls", "s3cret"), json={"project": "3.1", "schema": _config(yolov5n.class_names)})
    assert ok.json() == {"model_version": yolov5n.model_id}
    # after /setup the project's names are known without a label_config in the request
    assert b.projects["3.1"].from_name == "boxes" and b.projects["3.1"].image_field == "img"
    assert c.post("/webhook", auth=("ls", "s3cret"), json={"action": "ANNOTATION_CREATED"}).json()["trained"] is False
    assert c.post("/train", auth=("ls", "s3cret"), json={}).status_code == 501
    assert c.post("/predict", auth=("ls", "s3cret"), json={"project": "3.1"}).status_code == 400


@pytest.mark.parametrize(
    "xml, message",
    [
        ("<View><Image name='i' value='$x'/></View>", "no <RectangleLabels>"),
        ("<View><Image name='i' value='$x'/><RectangleLabels name='a' toName='i'/>"
         "<RectangleLabels name='b' toName='i'/></View>", "several <RectangleLabels> controls: \\['a', 'b'\\]"),
        ("<View><Text name='t' value='$x'/><RectangleLabels name='a' toName='t'/></View>", "not an <Image>"),
        ("<View><Image name='i' value='$x'>", "not valid XML"),
    ],
)
def test_unusable_label_configs_are_named(xml, message):
    with pytest.raises(LabelConfigMismatch, match=message):
        parse_label_config(xml)


def test_region_names_come_from_the_config():
    xml = ("<View><Header value='x'/><Image name='pic' value='$url'/><Choices name='c' toName='pic'/>"
           "<RectangleLabels name='objects' toName='pic'><Label value='cat' background='red'/>"
           "<Label value='dog'/></RectangleLabels></View>")
    names = parse_label_config(xml)
    assert (names.from_name, names.to_name, names.image_field, names.labels) == ("objects", "pic", "url", ("cat", "dog"))
    default = parse_label_config(labelstudio_config(["a", "b"]))
    assert (default.from_name, default.to_name, default.image_field) == ("label", "image", "image")


def test_serve_binds_loopback_by_default_and_rejects_bad_thresholds(capsys):
    from autolabel.cli import _build_parser

    args = _build_parser().parse_args(["serve", "--class-conf", "person=0.4,traffic light=0.5"])
    assert args.host == "127.0.0.1" and args.class_conf == {"person": 0.4, "traffic light": 0.5}
    with pytest.raises(SystemExit):
        _build_parser().parse_args(["serve", "--class-conf", "person"])
    assert "expected CLASS=THRESHOLD" in capsys.readouterr().err
    assert cli(["serve", "--class-conf", "person=1.5"]) == 2  # refused before anything binds
    assert "must be in [0, 1]" in capsys.readouterr().err
    # a misspelled class is refused at start, naming it and the model's classes
    assert cli(["serve", "--class-conf", "persn=0.4", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "does not have: 'persn' (did you mean 'person' for 'persn'?)" in err and "80 classes: person," in err
