"""genlab rate: design validation, test-folder creation (hashes, blind names, anchors, traps) and the
balance of the per-participant randomisation."""
import hashlib
import io
import json
from collections import Counter

import numpy as np
import pytest

from genlab.apps.rate import DesignError, create, load_design, load_manifest, participant_plan
from genlab.apps.rate.testing import make_images, toy_design


def _write(tmp_path, d):
    p = tmp_path / "d.json"
    p.write_text(json.dumps(d))
    return p


@pytest.mark.parametrize("patch, field", [
    ({"type": "ab"}, "type"),
    ({"systems": []}, "systems"),
    ({"systems": [{"name": "a", "path": "nowhere"}]}, "systems[0].path"),
    ({"systems": [{"name": "x y", "path": "s"}]}, "systems[0].name"),
    ({"systems": [{"name": "a", "path": "s"}, {"name": "a", "path": "s"}]}, "systems"),
    ({"colour": "red"}, "colour"),
    ({"min_time_s": -1}, "min_time_s"),
    ({"items": "ten"}, "items"),
    ({"anchors": [{"name": "lp", "kind": "lowpass"}]}, "anchors"),
    ({"modality": "video"}, "modality"),
])
def test_design_errors_name_the_field(tmp_path, patch, field):
    make_images(tmp_path / "s", 2, 0.5)
    d = {"type": "mos", "systems": [{"name": "a", "path": "s"}], "modality": "image"}
    d.update(patch)
    with pytest.raises(DesignError) as e:
        load_design(_write(tmp_path, d))
    assert field in str(e.value)


def test_design_needs_reference_for_mushra_and_hype(tmp_path):
    make_images(tmp_path / "s", 2, 0.5)
    for t in ("mushra", "hype"):
        with pytest.raises(DesignError, match="reference"):
            load_design(_write(tmp_path, {"type": t, "systems": [{"name": "a", "path": "s"}]}))


def test_yaml_design_and_modality_inference(tmp_path):
    make_images(tmp_path / "runs" / "vae" / "samples", 3, 0.5)     # a run directory: samples/ is used
    (tmp_path / "d.yaml").write_text("type: mos\nsystems:\n  - {name: vae, path: runs/vae}\n")
    d = load_design(tmp_path / "d.yaml")
    assert d.modality == "image" and d.type == "mos" and d.attention_checks == 2
    out = create(d, tmp_path / "test")
    m = load_manifest(out, verify=True)
    assert len(m["trials"]) == 3
    with pytest.raises(DesignError, match="cannot parse"):
        (tmp_path / "bad.yaml").write_text("type: [mos\n")
        load_design(tmp_path / "bad.yaml")


def test_create_manifest_hashes_and_blind_names(tmp_path):
    d = toy_design(tmp_path / "src", "pairwise", "image", n_systems=3, n_items=4, reference=True)
    out = create(d, tmp_path / "test")
    m = load_manifest(out, verify=True)
    assert len(m["trials"]) == 4 * 6          # 4 items × C(4, 2) pairs (3 systems + reference)
    for name, meta in m["files"].items():
        data = (out / "stimuli" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == meta["sha256"]
        assert meta["source"] not in name and len(name.split(".")[0]) == 20
    # each pair compares the same item of two different sources
    for t in m["trials"]:
        a, b = (m["files"][f] for f in t["stimuli"])
        assert a["item"] == b["item"] and a["source"] != b["source"]
    # a changed stimulus is detected
    f = next(iter(m["files"]))
    (out / "stimuli" / f).write_bytes(b"tampered")
    with pytest.raises(DesignError, match="changed"):
        load_manifest(out, verify=True)
    with pytest.raises(DesignError, match="not empty"):
        create(d, out)


def test_mushra_trials_have_hidden_reference_and_lowpass_anchors(tmp_path):
    from scipy.io import wavfile
    d = toy_design(tmp_path / "src", "mushra", "audio", n_systems=2, n_items=3)
    # make the reference broadband so that the low-pass anchor is visible in its spectrum
    rng = np.random.default_rng(0)
    for f in (tmp_path / "src" / "real").glob("*.wav"):
        wavfile.write(f, 16000, (rng.uniform(-0.5, 0.5, 4000) * 32767).astype(np.int16))
    out = create(d, tmp_path / "test")
    m = load_manifest(out)
    assert len(m["trials"]) == 3 and m["traps"] == []
    for t in m["trials"]:
        roles = [m["files"][f]["role"] for f in t["stimuli"]]
        assert sorted(roles) == ["anchor", "anchor", "hidden_reference", "system", "system"]
        ref = m["files"][t["reference"]]
        hid = next(m["files"][f] for f in t["stimuli"] if m["files"][f]["role"] == "hidden_reference")
        assert ref["sha256"] == hid["sha256"] and t["reference"] not in t["stimuli"]   # same audio, other name
        for f in t["stimuli"]:
            meta = m["files"][f]
            if meta["source"] == "anchor-lp3.5k":
                sr, y = wavfile.read(io.BytesIO((out / "stimuli" / f).read_bytes()))
                _, x = wavfile.read(io.BytesIO((out / "stimuli" / t["reference"]).read_bytes()))
                fx = np.abs(np.fft.rfft(x.astype(float))) ** 2
                fy = np.abs(np.fft.rfft(y.astype(float))) ** 2
                freqs = np.fft.rfftfreq(len(x), 1 / sr)
                hi, lo = freqs > 5000, freqs < 2500
                assert fy[hi].sum() < 1e-3 * fx[hi].sum()            # stop band removed
                assert 0.9 < fy[lo].sum() / fx[lo].sum() < 1.1       # pass band kept


def test_plan_is_deterministic_and_pairwise_left_right_balanced(tmp_path):
    d = toy_design(tmp_path / "src", "pairwise", "image", n_systems=3, n_items=3)
    m = load_manifest(create(d, tmp_path / "test"))
    assert participant_plan(m, 5, 123) == participant_plan(m, 5, 123)
    assert participant_plan(m, 5, 123) != participant_plan(m, 5, 124)
    rng = np.random.default_rng(0)
    left = Counter()
    seen = Counter()
    for k in range(40):                            # 20 consecutive pairs of participants
        plan = participant_plan(m, k, int(rng.integers(2**31)))
        assert sum(e["trap"] for e in plan) == 2 and len(plan) == len(m["trials"]) + 2
        for e in plan:
            if not e["trap"]:
                seen[e["base"]] += 1
                left[(e["base"], e["stimuli"][0])] += 1
    for t in m["trials"]:
        assert seen[t["id"]] == 40
        assert left[(t["id"], t["stimuli"][0])] == left[(t["id"], t["stimuli"][1])] == 20


def test_mushra_slots_form_a_latin_square_and_order_is_uniform(tmp_path):
    from scipy.stats import chisquare
    d = toy_design(tmp_path / "src", "mushra", "image", n_systems=2, n_items=4)
    m = load_manifest(create(d, tmp_path / "test"))
    n_cond = len(m["trials"][0]["stimuli"])        # 2 systems + hidden reference + 2 anchors = 5
    slot_counts = Counter()
    first = Counter()
    for k in range(n_cond * 40):
        plan = participant_plan(m, k, k * 7919 + 1)
        first[plan[0]["base"]] += 1
        for e in plan:
            for slot, f in enumerate(e["stimuli"]):
                slot_counts[(e["base"], f, slot)] += 1
    for t in m["trials"]:
        for f in t["stimuli"]:
            assert [slot_counts[(t["id"], f, s)] for s in range(n_cond)] == [40] * n_cond
    # presentation order: which trial comes first is uniform across participants
    assert chisquare(list(first.values())).pvalue > 1e-3


def test_subset_of_trials_covers_the_pool_evenly(tmp_path):
    d = toy_design(tmp_path / "src", "mos", "image", n_systems=2, n_items=5, trials_per_participant=4)
    m = load_manifest(create(d, tmp_path / "test"))
    assert len(m["trials"]) == 10 and m["n_trials"] == 4 + 2
    c = Counter(e["base"] for k in range(25) for e in participant_plan(m, k, k) if not e["trap"])
    assert sorted(c.values()) == [10] * 10         # 25 × 4 = 100 trials spread over 10 equally


def test_cli_create_and_clear_errors(tmp_path):
    from typer.testing import CliRunner
    from genlab.apps.rate.cli import rate_app
    d = toy_design(tmp_path / "src", "hype", "image", n_systems=2, n_items=3)
    r = CliRunner().invoke(rate_app, ["create", str(d), "--out", str(tmp_path / "t")])
    assert r.exit_code == 0 and "9 trials in the pool" in r.output
    (tmp_path / "bad.json").write_text(json.dumps({"type": "mushra", "systems": [{"path": "src/sys0"}]}))
    r = CliRunner().invoke(rate_app, ["create", str(tmp_path / "bad.json"), "--out", str(tmp_path / "t2")])
    assert r.exit_code == 2 and "reference" in r.output
    r = CliRunner().invoke(rate_app, ["analyze", str(tmp_path / "t")])
    assert r.exit_code == 2 and "no responses yet" in r.output


def test_run_directories_npy_and_text_samples(tmp_path):
    from PIL import Image
    from genlab.apps.rate.create import list_stimuli
    run = tmp_path / "runs" / "pixelcnn"
    (run / "samples").mkdir(parents=True)
    make_images(run / "samples", 1, 0.5)
    (run / "samples" / "000.png").rename(run / "samples" / "step_000500.png")       # a trainer grid
    with pytest.raises(DesignError, match="genlab sample"):
        list_stimuli(run)
    (run / "config.json").write_text(json.dumps({"info": {"num_levels": 17}}))
    x = np.arange(5 * 1 * 4 * 4).reshape(5, 1, 4, 4) % 17                        # (N, C, H, W) levels
    np.save(run / "samples" / "rate.npy", x)
    items = list_stimuli(run)
    assert [s for s, _ in items] == ["0", "1", "2", "3", "4"]
    im = np.asarray(Image.open(io.BytesIO(items[2][1].data)))
    assert im.shape == (4, 4) and np.array_equal(im, np.round(x[2, 0] / 16 * 255).astype(np.uint8))
    txt = tmp_path / "runs" / "gpt" / "samples"
    txt.mkdir(parents=True)
    (txt / "s.txt").write_text("First sample\nhas two lines.\n\nSecond sample.\n\nThird.")
    assert [t for _, t in list_stimuli(txt.parent)] == ["First sample\nhas two lines.", "Second sample.", "Third."]
    d = {"type": "mos", "systems": [{"name": "pixelcnn", "path": "runs/pixelcnn"}], "attention_checks": 1}
    m = load_manifest(create(load_design(_write(tmp_path, d)), tmp_path / "test"))
    assert load_design(_write(tmp_path, d)).modality == "image" and len(m["trials"]) == 5


def test_reference_from_a_genlab_dataset(tmp_path):
    from PIL import Image
    make_images(tmp_path / "gen", 6, 0.5)
    d = {"type": "hype", "systems": [{"name": "gen", "path": "gen"}],
         "reference": {"dataset": "digits", "split": "test", "n": 6}}
    design = load_design(_write(tmp_path, d))
    assert design.reference.dataset == "digits" and design.modality == "image"
    m = load_manifest(create(design, tmp_path / "test"), verify=True)
    reals = [f for f, meta in m["files"].items() if meta["role"] == "real"]
    assert len(reals) == 6
    import genlab as gl
    x0 = gl.load_dataset("digits", split="test").x[:6].numpy()[:, 0]
    shown = sorted(np.asarray(Image.open(tmp_path / "test" / "stimuli" / f)).tobytes() for f in reals)
    assert shown == sorted(np.round(x / 16 * 255).astype(np.uint8).tobytes() for x in x0)
    with pytest.raises(DesignError, match="exactly one of 'path'"):
        load_design(_write(tmp_path, {**d, "reference": {"dataset": "digits", "path": "gen"}}))
    with pytest.raises(DesignError, match="cannot be loaded"):
        create(load_design(_write(tmp_path, {**d, "modality": "image", "reference": {"dataset": "nope"}})),
               tmp_path / "t2")
