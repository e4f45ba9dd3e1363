"""Hostile and careless inputs: the probes of issue 19, kept as tests.

Each test reproduces one probe that once gave a leaked token, a 500, a traceback or a
silently wrong output, and checks that it now gives a clear refusal, a per-task error or
the correct output. The ``serve`` probes run against the real ``autolabel serve`` process
(started as a subprocess on 127.0.0.1, as ``test_serve.py`` does); the analysis probes run
the CLI and the API on coco-val-150 with the real yolov5n predictions.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from serve_process import start_serve, stop_serve

import autolabel as al
from autolabel.cli import main as cli
from autolabel.config import ConfigError, CostProfile
from autolabel.formats import labelstudio_config, read_coco
from autolabel.routing import FittedPolicy, fit_policy, route


ROOT = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-ls-token-4711"
PASSWORD = "backend-pw"
AUTH = ("ls", PASSWORD)


# -- fixtures: predictions, a fitted policy, a fake Label Studio host and served backends ------------------
@pytest.fixture(scope="module")
def predictions(coco150, tmp_path_factory):
    """yolov5n predictions of coco-val-150 at conf 0.05, written by the CLI as a user would."""
    out = tmp_path_factory.mktemp("pre")
    assert cli(["prelabel", str(coco150 / "images"), "--out", str(out), "--format", "coco", "--conf", "0.05",
                "--quiet"]) == 0
    return out / "annotations.json"


@pytest.fixture(scope="module")
def policy(predictions, coco150, tmp_path_factory):
    """A policy at alpha 0.6 (loose enough to auto-accept some images), fitted by the CLI."""
    path = tmp_path_factory.mktemp("policy") / "policy.json"
    assert cli(["calibrate", "--predictions", str(predictions), "--ground-truth", str(coco150 / "instances.json"),
                "--alpha", "0.6", "--out", str(path)]) == 0
    return path


class _Host(http.server.ThreadingHTTPServer):
    """A web server that serves one JPEG at every path and records each request's path and
    Authorization header: the Label Studio host, or a stranger's."""

    def __init__(self, image: bytes):
        self.image, self.seen = image, []
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                host.seen.append((self.path, self.headers.get("Authorization")))
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(host.image)))
                self.end_headers()
                self.wfile.write(host.image)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def jpeg(coco150):
    return sorted((coco150 / "images").glob("*.jpg"))[0]


@pytest.fixture(scope="module")
def hosts(jpeg):
    real, stranger = _Host(jpeg.read_bytes()), _Host(jpeg.read_bytes())
    yield real, stranger
    real.shutdown()
    stranger.shutdown()


def _served(args: list[str], log: Path, auth=None):
    """``autolabel serve`` in its own process; the token and the Basic Auth password in its
    environment, and no Label Studio URL unless ``args`` name one."""
    env = {k: v for k, v in os.environ.items() if k not in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY")}
    env.update(PYTHONPATH=str(ROOT), LABEL_STUDIO_API_KEY=TOKEN, AUTOLABEL_SERVE_PASSWORD=PASSWORD)
    return start_serve(args, log, env, auth)


@pytest.fixture(scope="module")
def docroot(coco150, tmp_path_factory):
    """A local-files document root: 10 coco-val-150 images, four 13,000 x 13,000 PNGs (20 KB files,
    507 MB each once decoded) and an 8,000 x 6,000 JPEG (48 MP)."""
    from PIL import Image

    import shutil

    root = tmp_path_factory.mktemp("root")
    (root / "coco" / "images").mkdir(parents=True)  # copies: a link out of the root is refused
    for p in sorted((coco150 / "images").glob("*.jpg"))[:10]:
        shutil.copy(p, root / "coco" / "images" / p.name)
    big = root / "big"
    big.mkdir()
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # only to write the probe files here
    Image.new("L", (13000, 13000)).save(big / "huge0.png", optimize=True)
    Image.MAX_IMAGE_PIXELS = limit
    for i in range(1, 4):
        (big / f"huge{i}.png").write_bytes((big / "huge0.png").read_bytes())
    photo = Image.open(sorted((coco150 / "images").glob("*.jpg"))[0]).convert("RGB")
    photo.resize((8000, 6000)).save(big / "large.jpg", quality=80)
    return root


@pytest.fixture(scope="module")
def local_only(docroot, tmp_path_factory):
    """serve with no Label Studio URL configured, Basic Auth, small limits and a 4 s time limit."""
    log = tmp_path_factory.mktemp("serve-local") / "serve.log"
    proc, url = _served(["--document-root", str(docroot), "--basic-auth-user", "ls", "--max-tasks", "200",
                         "--max-body-mb", "1", "--time-limit", "4"], log, AUTH)
    yield url, log, proc
    stop_serve(proc)


@pytest.fixture(scope="module")
def with_host(hosts, docroot, tmp_path_factory):
    """serve with the (fake) Label Studio host configured and the token in the environment."""
    log = tmp_path_factory.mktemp("serve-host") / "serve.log"
    proc, url = _served(["--label-studio-url", hosts[0].url, "--document-root", str(docroot)], log)
    yield url, log
    stop_serve(proc)


@pytest.fixture(scope="module")
def config(yolov5n):
    return labelstudio_config(yolov5n.class_names)


def _task(i: int, url: str) -> dict:
    return {"id": i, "data": {"image": url}}


GOOD = "/data/local-files/?d=coco/images/{}"


# -- serve: security --------------------------------------------------------------------------------------
def test_1_setup_never_sets_the_host_and_upload_urls_are_refused_without_one(local_only, hosts, config):
    url, log, _ = local_only
    stranger = hosts[1]
    r = httpx.post(url + "/setup", auth=AUTH, json={"project": "1.0", "schema": config, "hostname": stranger.url,
                                                    "access_token": "from-setup"})
    assert r.status_code == 200
    out = httpx.post(url + "/predict", auth=AUTH, json={"tasks": [_task(1, "/data/upload/1/x.jpg")], "project": "1.0"},
                     timeout=60).json()["results"]
    assert "no Label Studio URL is configured" in out[0]["error"] and "never takes one from a request" in out[0]["error"]
    assert stranger.seen == []  # nothing, and no token, went to the host /setup named
    assert "ignored (a host is never taken from a request)" in log.read_text()


def test_1_the_token_goes_only_to_the_configured_host(with_host, hosts, config):
    url, log = with_host
    real, stranger = hosts
    httpx.post(url + "/setup", json={"project": "2.0", "schema": config, "hostname": stranger.url})
    out = httpx.post(url + "/predict", json={"tasks": [_task(1, "/data/upload/1/x.jpg")], "label_config": config},
                     timeout=60).json()["results"]
    assert len(out[0]["result"]) > 0
    assert stranger.seen == [] and ("/data/upload/1/x.jpg", f"Token {TOKEN}") in real.seen


def test_2_docs_and_openapi_need_the_credentials(local_only):
    url, _, _ = local_only
    for path in ("/docs", "/openapi.json"):
        assert httpx.get(url + path).status_code == 401
        assert httpx.get(url + path, auth=("ls", "wrong")).status_code == 401
        assert httpx.get(url + path, auth=AUTH).status_code == 200


def test_3_query_strings_are_redacted_from_every_log_line(with_host, hosts, config):
    url, log = with_host
    real = hosts[0]
    secret = "tok-in-url-9931"
    task = _task(1, f"{real.url}/data/upload/1/x.jpg?token={secret}&other=2")
    out = httpx.post(url + "/predict?token=" + secret, json={"tasks": [task], "label_config": config},
                     timeout=60).json()["results"]
    assert len(out[0]["result"]) > 0 and any(secret in p for p, _ in real.seen)  # it was fetched, with its query
    time.sleep(0.5)  # the log is written by the server process
    text = log.read_text()
    assert "HTTP Request: GET" in text and "token=<redacted>" in text  # httpx's own INFO line, redacted
    assert secret not in text and TOKEN not in text


def test_4_audit_never_reads_outside_its_folder_and_a_missing_image_is_noted(coco150, yolov5n, tmp_path):
    from autolabel.audit import audit

    gt = read_coco(coco150 / "instances.json")
    gt = type(gt)(gt.detections[:16], gt.class_names)
    images = tmp_path / "images"
    images.mkdir()
    (tmp_path / "outside").mkdir()
    names = {}
    for i, d in enumerate(gt):
        src = coco150 / "images" / d.image.file_name
        if i % 3 == 0:  # refers outside the image folder, where a real image lies
            names[d.image.key] = f"../outside/{d.image.file_name}"
            (tmp_path / "outside" / d.image.file_name).symlink_to(src)
        elif i % 3 == 1:  # missing from the folder
            names[d.image.key] = f"gone-{d.image.file_name}"
        else:
            names[d.image.key] = d.image.file_name
            (images / d.image.file_name).symlink_to(src)
    pred = al.prelabel([str(coco150 / "images" / d.image.file_name) for d in gt], yolov5n, conf=0.01, progress=False)
    rename = lambda r: type(r)([x.with_image(al.ImageInfo(names[x.image.key], x.image.width, x.image.height))  # noqa: E731
                                for x in r], r.class_names, r.model_id)
    a = audit(rename(gt), rename(pred), seeds=(1,), min_score=0.0)
    with pytest.warns(UserWarning, match="example suspects not drawn"):
        paths = a.save(tmp_path / "A", image_root=images, examples=len(a.suspects))
    drawn = [p for p in paths if p.endswith(".png")]
    assert drawn and not any("outside" in p for p in drawn)
    md = (tmp_path / "A" / "summary.md").read_text()  # the audit went on and wrote its summary
    top = a.suspects["file_name"].tolist()
    assert any(n.startswith("../outside/") for n in top) and any(n.startswith("gone-") for n in top)
    assert "refusing to read '../outside/" in md and "file not found" in md


def test_5_an_error_never_echoes_a_files_contents(tmp_path, predictions, coco150):
    secret = tmp_path / "secret.txt"
    secret.write_text("api_password: hunter2-XYZ\nroot:x:0:0:root:/root:/bin/bash\n")
    for path in ("/etc/passwd", str(secret)):
        with pytest.raises(ConfigError) as e:
            CostProfile.load(path)
        assert path in str(e.value) and "root:x:0" not in str(e.value) and "hunter2" not in str(e.value)
    preds, gt = read_coco(predictions), read_coco(coco150 / "instances.json")
    with pytest.raises(ConfigError) as e:
        fit_policy(preds, gt, {"alpha": 0.6, "cost_profile": "/etc/passwd"})
    assert "/etc/passwd" in str(e.value) and "root:" not in str(e.value)


# -- silent wrong output: tampered policies, class names, boxes -------------------------------------------------
def _resign(d: dict) -> dict:
    """Recompute the checksum as a careless tool (or a person) that re-saves a file would."""
    content = {k: v for k, v in d.items() if k != "checksum"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=True, ensure_ascii=True)
    return {**content, "checksum": "sha256:" + hashlib.sha256(text.encode()).hexdigest()}


def _edited(policy: Path, tmp_path: Path, edit, resign: bool = False) -> Path:
    d = json.loads(policy.read_text())
    edit(d)
    out = tmp_path / f"edited-{len(list(tmp_path.iterdir()))}.json"
    out.write_text(json.dumps(_resign(d) if resign else d))
    return out


@pytest.mark.parametrize("edit, resigned", [
    (lambda d: d["config"].update(alpha=0.01), "its alpha 0.01: the guarantee does not hold"),
    (lambda d: d.update(threshold=-1), r"threshold -1(\.0)? is not a threshold that passed"),
    (lambda d: d["curve"]["ucb"].__setitem__(d["curve"]["threshold"].index(d["threshold"]), 0.01),
     "is not the bound of its counts"),
    (lambda d: d["miss"].__setitem__(0, 9.0), None),  # only the checksum can tell
])
def test_6_a_tampered_policy_is_refused(policy, tmp_path, predictions, edit, resigned):
    thr = json.loads(policy.read_text())["threshold"]
    assert thr is not None  # the probe needs a policy that auto-accepts
    with pytest.raises(ConfigError, match="edited after it was fitted .*checksum.* not a deliberate forgery"):
        FittedPolicy.load(_edited(policy, tmp_path, edit))
    out = tmp_path / "out"
    rc = cli(["route", "--predictions", str(predictions), "--policy", str(_edited(policy, tmp_path, edit)),
              "--out", str(out)])
    assert rc == 2 and not out.exists()
    if resigned:  # re-saved with a fresh checksum: the guarantee's own check still refuses it
        with pytest.raises(ConfigError, match=resigned):
            FittedPolicy.load(_edited(policy, tmp_path, edit, resign=True))


def test_6_the_summary_states_the_fitted_guarantee(policy, predictions, tmp_path):
    assert cli(["route", "--predictions", str(predictions), "--policy", str(policy), "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    g = json.loads(policy.read_text())["guarantee"]
    assert summary["alpha"] == g["alpha"] == 0.6 and summary["threshold"] == g["threshold"] and g["ucb"] <= 0.6


def test_7_renamed_classes_are_refused_by_route(policy, predictions, tmp_path, capsys):
    d = json.loads(predictions.read_text())
    next(c for c in d["categories"] if c["name"] == "person")["name"] = "human"
    renamed = tmp_path / "renamed.json"
    renamed.write_text(json.dumps(d))
    assert cli(["route", "--predictions", str(renamed), "--policy", str(policy), "--out", str(tmp_path / "o")]) == 2
    assert "class names are not the ones the policy was fitted on (not in the policy: ['human']" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.update(class_names="person"), "class_names: Input should be a valid (list|array)"),
    (lambda d: d.update(miss=[0.1]), "miss: Tuple should have at most|miss.1: Field required"),
    (lambda d: d.update(box_threshold="high"), "box_threshold: Input should be a valid number"),
    (lambda d: d.update(use_agreement="false"), "use_agreement: Input should be a valid boolean"),
    (lambda d: d["calibrators"]["correct"].update(per_class=[]), "calibrators.correct.per_class: Input should be"),
])
def test_14_policy_fields_are_validated_with_file_and_field_named(policy, tmp_path, edit, field):
    path = _edited(policy, tmp_path, edit, resign=True)
    with pytest.raises(ConfigError, match=field) as e:
        FittedPolicy.load(path)
    assert str(path) in str(e.value) and "Traceback" not in str(e.value)


def test_14_a_tree_feature_index_out_of_range_is_named(predictions, coco150, tmp_path):
    preds, gt = read_coco(predictions), read_coco(coco150 / "instances.json")
    learned = fit_policy(preds, gt, {"alpha": 0.6, "scorer": "learned", "holdout": 0.5})
    path = learned.save(tmp_path / "learned.json")
    assert FittedPolicy.load(path).learned  # the untouched policy loads

    def edit(d):
        feat = d["learned"]["no_edit"]["trees"][0][0]
        feat[next(i for i, f in enumerate(feat) if f >= 0)] = 99

    with pytest.raises(ConfigError, match=r"learned.no_edit: .*tree 0 node 0: feature index 99 outside 0..\d+"):
        FittedPolicy.load(_edited(Path(path), tmp_path, edit, resign=True))


@pytest.mark.parametrize("bbox, why", [
    ([-10000, -10000, 50, 50], "lies entirely outside"),
    ([10, 10, 0, 20], "zero width or height (0 x 20)"),
    ([10, 10, 1e300, 20], "not finite 32-bit numbers"),
    ([10, 10, -640, 20], "negative width or height (-640 x 20)"),
])
def test_8_9_impossible_boxes_are_refused_before_anything_is_written(policy, predictions, tmp_path, capsys, bbox, why):
    d = json.loads(predictions.read_text())
    first = {a["image_id"] for a in d["annotations"]}
    for a in d["annotations"]:
        if a["image_id"] in sorted(first)[:200]:
            a["bbox"] = bbox
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))
    out = tmp_path / "o"
    assert cli(["route", "--predictions", str(bad), "--policy", str(policy), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "annotation id" in err and why in err
    assert not out.exists()  # nothing written
    for command in (["savings", "--predictions", str(bad), "--ground-truth", str(bad)],
                    ["calibrate", "--predictions", str(bad), "--ground-truth", str(bad), "--out", str(tmp_path / "p")]):
        assert cli(command) == 2 and why in capsys.readouterr().err


def test_8_video_readers_refuse_impossible_boxes_too(tmp_path):
    from autolabel.formats import read_mot

    mot = tmp_path / "seq.txt"
    mot.write_text("1,1,10,10,50,80,1,1\n1,2,-9000,-9000,50,80,1,1\n")
    with pytest.raises(ValueError, match=r"seq.txt: frame 1, id 2: invalid box: .*lies entirely outside the 640x480"):
        read_mot(mot, image_size=(640, 480))


def test_9_route_writes_all_its_files_or_none(policy, predictions, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "manifest.csv").write_text("the previous run\n")
    (out / "risk_coverage.png").mkdir()  # the last file cannot be written
    with pytest.raises(OSError):
        route(read_coco(predictions), str(policy)).save(out)
    assert (out / "manifest.csv").read_text() == "the previous run\n"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv", "risk_coverage.png"]  # no staging folder left


def test_14_savings_ids_given_as_lists_are_named(predictions, coco150, tmp_path, capsys):
    for edit, what in [(lambda d: d["images"][3].update(id=[1, 2]), "image id must be an integer"),
                       (lambda d: d["annotations"][5].update(category_id=[1]), "category_id must be an integer"),
                       (lambda d: d["categories"][0].update(id=[1]), "category id must be an integer")]:
        d = json.loads(predictions.read_text())
        edit(d)
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(d))
        assert cli(["savings", "--predictions", str(bad), "--ground-truth", str(coco150 / "instances.json")]) == 2
        err = capsys.readouterr().err
        assert str(bad) in err and what in err and "unhashable" not in err


# -- serve: reliability and limits ------------------------------------------------------------------------------
def test_10_one_bad_url_is_a_per_task_error(local_only, with_host, hosts, config, jpeg):
    good = GOOD.format(jpeg.name)
    bad = ["http://127.0.0.1:99999/x.jpg", "[::1", "http://[::1/x.jpg", "%00", "/data/local-files/?d=%00",
           "/data/upload/x\r\nHost: evil.jpg", f"{hosts[0].url}/data/upload/1/x\r\ny.jpg", 17, None]
    tasks = [_task(0, good), *(_task(i + 1, u) for i, u in enumerate(bad)), _task(99, good)]
    for url, auth in ((local_only[0], AUTH), (with_host[0], None)):
        r = httpx.post(url + "/predict", auth=auth, json={"tasks": tasks, "label_config": config}, timeout=60)
        assert r.status_code == 200
        out = r.json()["results"]
        assert len(out) == len(tasks) and len(out[0]["result"]) > 0
        assert [r["value"] for r in out[-1]["result"]] == [r["value"] for r in out[0]["result"]]
        assert all("error" in p and "result" not in p for p in out[1:-1])


@pytest.mark.parametrize("label_config", [1, [1, 2], {"xml": "<View/>"}, True])
def test_11_a_label_config_of_the_wrong_type_is_4xx(local_only, jpeg, label_config):
    url, _, _ = local_only
    r = httpx.post(url + "/predict", auth=AUTH, json={"tasks": [_task(1, GOOD.format(jpeg.name))],
                                                       "label_config": label_config})
    assert r.status_code == 422 and "must be the labeling config's XML text" in r.json()["error"]
    r = httpx.post(url + "/setup", auth=AUTH, json={"project": "5", "schema": label_config})
    assert r.status_code == 422


def _rss_kb(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(field + ":")))


def test_12_huge_images_are_refused_or_decoded_small_within_memory(local_only, docroot, config, capsys):
    url, _, proc = local_only
    good = _task(9, GOOD.format(sorted(p.name for p in (docroot / "coco" / "images").iterdir())[0]))
    httpx.post(url + "/predict", auth=AUTH, json={"tasks": [good], "label_config": config}, timeout=60)  # warm

    def peak_rise_mb(tasks: list[dict]) -> tuple[list[dict], float]:
        before = _rss_kb(proc.pid, "VmRSS")
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
        r = httpx.post(url + "/predict", auth=AUTH, json={"tasks": tasks, "label_config": config}, timeout=120)
        assert r.status_code == 200
        return r.json()["results"], (_rss_kb(proc.pid, "VmHWM") - before) / 1024

    out, png_mb = peak_rise_mb([_task(i, f"/data/local-files/?d=big/huge{i}.png") for i in range(4)] + [good])
    for p in out[:4]:
        assert "13000x13000 pixels (169 MP) are more than the limit of 40 MP per image" in p["error"]
    assert "result" in out[4]
    out, jpeg_mb = peak_rise_mb([_task(4, "/data/local-files/?d=big/large.jpg")])
    assert "result" in out[0]  # the 48 MP JPEG: decoded at 1/2 scale, boxes in full-size pixels
    assert all(r["original_width"] == 8000 for r in out[0]["result"])
    with capsys.disabled():
        print(f"\nserve peak RSS rise: four 13,000 x 13,000 PNG tasks (+ one normal) +{png_mb:.0f} MB; "
              f"one 8,000 x 6,000 JPEG +{jpeg_mb:.0f} MB")
    assert png_mb < 500 and jpeg_mb < 500


def test_limits_answer_413_with_the_reason(local_only, config, jpeg):
    url, _, _ = local_only
    many = [_task(i, GOOD.format(jpeg.name)) for i in range(201)]
    r = httpx.post(url + "/predict", auth=AUTH, json={"tasks": many, "label_config": config})
    assert r.status_code == 413 and "201 tasks in one request; this backend takes at most 200" in r.json()["error"]
    r = httpx.post(url + "/predict", auth=AUTH, json={"tasks": [], "label_config": "x" * (2 * 2**20)})
    assert r.status_code == 413 and "larger than this backend's limit of 1048576 bytes" in r.json()["error"]

    def chunks():  # no Content-Length: the limit holds as the body streams
        for _ in range(40):
            yield b" " * 65536

    r = httpx.post(url + "/predict", auth=AUTH, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_13_the_time_limit_counts_from_arrival(coco150, yolov5n, config):
    from autolabel.serve import Backend, ImageAccess

    b = Backend(yolov5n, images=ImageAccess(document_root=coco150.parent), time_limit=5)
    tasks = [_task(i, f"/data/local-files/?d=coco-val-150/images/{p.name}")
             for i, p in enumerate(sorted((coco150 / "images").glob("*.jpg"))[:3])]
    queued = b.predict(tasks, config, started=time.monotonic() - 6)  # it waited 6 s for the lock
    assert all("time limit" in p["error"] for p in queued)
    fresh = b.predict(tasks, config, started=time.monotonic())
    assert all("result" in p for p in fresh)


def test_13_a_request_queued_behind_long_ones_answers_within_its_limit(local_only, config, coco150):
    """Two long batches, then a 1-task request: it answers once its own 4 s are up (with the
    task, or with a time-limit error for it), not after both batches."""
    url, _, _ = local_only
    names = sorted(p.name for p in (coco150 / "images").glob("*.jpg"))[:10]
    long = {"tasks": [_task(i, GOOD.format(names[i % 10])) for i in range(150)], "label_config": config}
    answers: dict[str, float] = {}

    def post(name: str, body: dict) -> None:
        t0 = time.monotonic()
        r = httpx.post(url + "/predict", auth=AUTH, json=body, timeout=120)
        assert r.status_code == 200 and len(r.json()["results"]) == len(body["tasks"])
        answers[name] = time.monotonic() - t0

    threads = [threading.Thread(target=post, args=(n, long)) for n in ("a", "b")]
    for t in threads:
        t.start()
        time.sleep(0.3)
    post("c", {"tasks": [_task(0, GOOD.format(names[0]))], "label_config": config})
    for t in threads:
        t.join()
    # each queued request answers within its own limit plus at most one inference batch (once, the
    # second of them started its clock when it got the lock and answered after both batches, ~8 s)
    assert answers["b"] < 4 + 3 and answers["c"] < 4 + 3
