import json
import random

import numpy as np
import pytest

from hwnas.spaces.base import ArchError, SpaceError, get_space, list_spaces
from hwnas.spaces.mbv3 import MBv3Space


def test_shipped_spaces(mbv3, demo):
    assert {"mbv3", "demo"} <= set(list_spaces())
    assert [s.width for s in mbv3.stages] == [24, 40, 80, 112, 160]
    assert [s.stride for s in mbv3.stages] == [2, 2, 2, 1, 2]
    assert [s.se for s in mbv3.stages] == [False, True, False, True, True]
    assert [s.act for s in mbv3.stages] == ["relu", "relu", "hswish", "hswish", "hswish"]
    assert mbv3.resolutions == (160, 176, 192, 208, 224)
    assert demo.num_classes == 10


def test_arch_json_round_trip(mbv3, tmp_path):
    for seed in range(5):
        arch = mbv3.sample(seed)
        again = mbv3.arch_from_dict(json.loads(arch.to_json()))
        assert again == arch and hash(again) == hash(arch) and again.id == arch.id
        path = tmp_path / "a.json"
        path.write_text(arch.to_json())
        assert mbv3.load_arch(path) == arch


def test_space_round_trip_and_digest(mbv3, tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(mbv3.to_dict()))
    again = MBv3Space.from_file(path)
    assert again == mbv3 and again.digest == mbv3.digest
    changed = MBv3Space.from_dict({**mbv3.to_dict(), "kernels": [3, 5]})
    assert changed.digest != mbv3.digest


def test_space_from_toml(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text('''
name = "tiny"
num_classes = 4
resolutions = [32]
depths = [1, 2]
kernels = [3]
expands = [2, 4]
final_expand = 64
head_width = 128
[[stages]]
width = 16
stride = 2
act = "relu"
[[stages]]
width = 24
stride = 2
se = true
''')
    space = get_space(path)
    assert space.name == "tiny" and len(space.stages) == 2 and space.stages[1].se
    assert space.sample(0).layers()[-1].cout == 4


def test_same_seed_same_archs(mbv3):
    a = [mbv3.sample(random.Random(3)) for _ in range(2)]
    assert a[0] == a[1]
    r1, r2 = random.Random(5), random.Random(5)
    assert [mbv3.sample(r1) for _ in range(20)] == [mbv3.sample(r2) for _ in range(20)]


def test_sampling_reaches_every_choice(mbv3):
    rng = random.Random(0)
    archs = [mbv3.sample(rng) for _ in range(300)]
    assert {a.resolution for a in archs} == set(mbv3.resolutions)
    assert {d for a in archs for d in a.depths} == set(mbv3.depths)
    for s in range(len(mbv3.stages)):
        assert {len(a.kernels[s]) for a in archs} == set(mbv3.depths)
        assert {k for a in archs for k in a.kernels[s]} == set(mbv3.kernels)
        assert {e for a in archs for e in a.expands[s]} == set(mbv3.expands)


def test_mutate_and_crossover_stay_valid_and_are_seeded(mbv3):
    rng = random.Random(1)
    archs = [mbv3.sample(rng) for _ in range(30)]
    changed = 0
    for a, b in zip(archs, archs[1:]):
        m = a.mutate(random.Random(7), prob=0.3)
        c = a.crossover(b, random.Random(7))
        m.validate()
        c.validate()
        changed += m != a
        assert m == a.mutate(random.Random(7), prob=0.3)
        assert c == a.crossover(b, random.Random(7))
        # every gene of the child comes from a parent
        assert c.resolution in (a.resolution, b.resolution)
        for s, ks in enumerate(c.kernels):
            for i, k in enumerate(ks):
                assert k in [p.kernels[s][i] for p in (a, b) if i < len(p.kernels[s])]
    assert changed > 20
    assert all(a.mutate(random.Random(0), prob=0.0) == a for a in archs)


def test_encode_is_fixed_length_one_hot(mbv3):
    lens = {len(mbv3.sample(s).encode()) for s in range(20)}
    assert lens == {mbv3.encoding_size}
    a = mbv3.sample(2)
    enc = a.encode()
    assert set(enc) <= {0.0, 1.0}
    assert sum(enc) == 2 * sum(a.depths) + 2  # one kernel and one expand per active block, res, width
    assert mbv3.sample(3).encode() != enc


def test_arch_id_is_stable_and_short(mbv3):
    arch = mbv3.sample(0)
    assert len(arch.id) == 12 and arch.id == mbv3.arch_from_dict(arch.to_dict()).id
    assert len({mbv3.sample(s).id for s in range(50)}) == 50


def test_all_layers_covers_every_sampled_arch(demo):
    keys = {d.key for d in demo.all_layers()}
    rng = random.Random(0)
    for _ in range(200):
        assert {d.key for d in demo.sample(rng).layers()} <= keys


# -- validation errors: each names the field and what is allowed ---------------------------
@pytest.mark.parametrize("change, message", [
    (dict(resolution=100), r"resolution = 100 is not allowed; choose from \[160, 176, 192, 208, 224\]"),
    (dict(width=0.5), r"width = 0.5 is not allowed"),
    (dict(kernels=[[3, 9], [3, 3], [3, 3], [3, 3], [3, 3]]), r"kernels\[0\]\[1\] = 9 is not allowed; choose from \[3, 5, 7\]"),
    (dict(expands=[[3, 5], [3, 3], [3, 3], [3, 3], [3, 3]]), r"expands\[0\]\[1\] = 5 is not allowed"),
    (dict(kernels=[[3]] * 5, expands=[[3]] * 5), r"stage 0: depth = 1 is not allowed; choose from \[2, 3, 4\]"),
    (dict(kernels=[[3, 3]] * 4, expands=[[3, 3]] * 4), r"one list per stage \(5 stages\)"),
    (dict(expands=[[3]] + [[3, 3]] * 4), r"stage 0: 2 kernels but 1 expands"),
    (dict(space="other"), r"arch is for space 'other', not 'mbv3'"),
    (dict(depths=[4, 2, 2, 2, 2]), r"'depths' \[4, 2, 2, 2, 2\] disagrees"),
    (dict(colour="red"), r"unknown field\(s\) \['colour'\]"),
    (dict(kernels="big"), r"must be a list \(one per stage\) of lists"),
])
def test_arch_validation_errors(mbv3, change, message):
    base = {"space": "mbv3", "resolution": 224, "width": 1.0, "kernels": [[3, 3]] * 5, "expands": [[3, 3]] * 5}
    with pytest.raises(ArchError, match=message):
        mbv3.arch_from_dict({**base, **change})


def test_arch_missing_field_and_bad_file(mbv3, tmp_path):
    with pytest.raises(ArchError, match="missing required field 'kernels'"):
        mbv3.arch_from_dict({"resolution": 224, "expands": []})
    with pytest.raises(ArchError, match="does not exist"):
        mbv3.load_arch(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"resolution": 224,')
    with pytest.raises(ArchError, match=r"bad.json: not valid JSON .* line 1"):
        mbv3.load_arch(bad)


@pytest.mark.parametrize("change, message", [
    (dict(stages=[]), "at least one stage"),
    (dict(stages="x"), "field 'stages' must be a list"),
    (dict(stages=[{"width": 16}]), r"stages\[0\]: missing required field 'stride'"),
    (dict(stages=[{"width": 16, "stride": 3}]), r"stages\[0\].stride = 3 is not allowed; choose from \[1, 2\]"),
    (dict(stages=[{"width": 16, "stride": 2, "act": "gelu"}]), r"stages\[0\].act = 'gelu' is not allowed; choose from"),
    (dict(stages=[{"width": 16, "stride": 2, "se": "yes"}]), r"stages\[0\].se must be true or false"),
    (dict(stages=[{"width": 16, "stride": 2, "depth": 3}]), r"stages\[0\]: unknown field\(s\) \['depth'\]"),
    (dict(kernels=[3, 4]), "field 'kernels' must be odd"),
    (dict(kernels=[]), "field 'kernels' must list at least one choice"),
    (dict(depths=[2, 2]), "field 'depths' has repeated values"),
    (dict(expands=[0.5]), "field 'expands' values must be from 1 to 64"),
    (dict(resolutions=[224.5]), r"field 'resolutions'\[0\] must be a whole number"),
    (dict(resolutions=[8]), "smaller than the total stride"),
    (dict(num_classes=0), "field 'num_classes' must be from 1 to 100000"),
    (dict(stem_act="tanh"), "field 'stem_act' = 'tanh'; choose from"),
    (dict(name="my space!"), "field 'name' must be a non-empty word"),
    (dict(layers=3), r"unknown field\(s\) \['layers'\]"),
])
def test_space_validation_errors(mbv3, change, message):
    with pytest.raises(SpaceError, match=message):
        MBv3Space.from_dict({**mbv3.to_dict(), **change}, source="my.json")


def test_space_file_errors(tmp_path):
    with pytest.raises(SpaceError, match="does not exist"):
        get_space(tmp_path / "none.json")
    p = tmp_path / "broken.json"
    p.write_text('{"name": "x", "stages": [')
    with pytest.raises(SpaceError, match="broken.json: not valid JSON"):
        get_space(p)
    p.write_text('[1, 2]')
    with pytest.raises(SpaceError, match="expected a JSON object"):
        get_space(p)
    p.write_text('{"stages": []}')
    with pytest.raises(SpaceError, match="missing required field 'name'"):
        get_space(p)
    t = tmp_path / "bad.toml"
    t.write_text("name = [")
    with pytest.raises(SpaceError, match="could not parse"):
        get_space(t)
    with pytest.raises(SpaceError, match="unknown space 'nope'; shipped spaces"):
        get_space("nope")


def test_genes_round_trip(mbv3, demo):
    for space in (mbv3, demo):
        ub = space.gene_upper_bounds()
        for seed in range(20):
            a = space.sample(seed)
            g = a.genes()
            assert len(g) == len(ub) and all(0 <= x <= u for x, u in zip(g, ub))
            assert space.from_genes(g) == a


def test_sample_distinct_is_seeded_distinct_and_excludes(demo):
    archs = demo.sample_distinct(20, random.Random(3))
    assert len({a.id for a in archs}) == 20
    assert [a.id for a in archs] == [a.id for a in demo.sample_distinct(20, random.Random(3))]
    rest = demo.sample_distinct(20, random.Random(3), exclude=[a.id for a in archs[:5]])
    assert len(rest) == 20 and not {a.id for a in archs[:5]} & {a.id for a in rest}


def test_with_resolutions_renames_and_validates(mbv3):
    small = mbv3.with_resolutions([64, 32, 32], num_classes=10)
    assert small.name == "mbv3-r32-64" and small.resolutions == (32, 64) and small.num_classes == 10
    assert small.digest != mbv3.digest and small.stages == mbv3.stages
    assert all(a.resolution in (32, 64) for a in small.sample_distinct(5, random.Random(0)))
    with pytest.raises(SpaceError, match="smaller than the total stride"):
        mbv3.with_resolutions([16])
    with pytest.raises(SpaceError, match="at least one"):
        mbv3.with_resolutions([])


def _spaces_for_genes(mbv3, demo):
    """The shipped spaces, one with float expands and several widths, and one whose stage codes pass int64."""
    odd = MBv3Space.from_dict({**mbv3.to_dict(), "name": "odd", "expands": [2.5, 4, 6.25],
                                 "width_mults": [0.75, 1, 1.25], "depths": [1, 3, 4]})
    deep = MBv3Space.from_dict({**demo.to_dict(), "name": "deep", "depths": [1, 40], "kernels": [3, 5, 7]})
    return (mbv3, demo, odd, deep)


def test_gene_matrix_paths_agree_with_per_arch_genes_and_ids(mbv3, demo):
    for space in _spaces_for_genes(mbv3, demo):
        ub = np.asarray(space.gene_upper_bounds())
        G = np.random.default_rng(0).integers(0, ub + 1, size=(300, len(ub)))  # inactive blocks not zeroed
        ref = [space.from_genes(g) for g in G]
        canon = space.canonical_genes(G)
        assert (canon == np.array([a.genes() for a in ref])).all()
        ids = space.gene_ids(G)
        assert ids == [a.id for a in ref]  # ids through Arch.to_json
        made = space.archs_from_genes(G, ids)
        assert made == ref and [a.id for a in made] == ids
        assert [a.genes() for a in made] == [a.genes() for a in ref]
        assert (space.gene_matrix(made) == canon).all() and (space.gene_matrix(ref) == canon).all()
        assert space.gene_matrix(ref, compact=True).dtype == (np.uint8 if ub.max() < 256 else np.int32)


def test_gene_variation_keeps_rows_valid_and_parents_genes(mbv3):
    rng = np.random.default_rng(1)
    S, D = len(mbv3.stages), mbv3.max_depth
    P = mbv3.gene_matrix([mbv3.sample(s) for s in range(200)])
    A, B = P[:100], P[100:]
    C = mbv3.crossover_genes(A, B, rng)
    assert (C == mbv3.canonical_genes(C)).all()
    assert ((C[:, :2 + S] == A[:, :2 + S]) | (C[:, :2 + S] == B[:, :2 + S])).all()
    blocks = [X[:, 2 + S:].reshape(-1, S, D, 2) for X in (A, B, C)]
    depth = [np.asarray(mbv3.depths)[X[:, 2:2 + S]][..., None] > np.arange(D) for X in (A, B, C)]
    from_a = (blocks[2] == blocks[0]).all(-1) & depth[0]
    from_b = (blocks[2] == blocks[1]).all(-1) & depth[1]
    assert (from_a | from_b)[depth[2]].all()  # a child's block is a parent's block at that position
    assert (mbv3.crossover_genes(A, A, rng) == A).all()
    assert (mbv3.mutate_genes(P, 0.0, rng) == P).all()
    M = mbv3.mutate_genes(P, 0.3, rng)
    assert (M == mbv3.canonical_genes(M)).all() and (M >= 0).all() and (M <= mbv3.gene_upper_bounds()).all()
    assert 0.15 < (M != P).any(1).mean() <= 1.0 and (M != P).any(1).sum() > 150
    for a in mbv3.archs_from_genes(np.vstack([C, M])):
        a.validate()


def test_gene_variation_matches_the_per_arch_operators_in_distribution(mbv3):
    """Arch.mutate / Arch.crossover and their gene-matrix forms draw the same children (frequencies of each
    stage's depth and of each gene agree within sampling error: at most 0.034 apart over seeds 0-3, where
    always taking the first parent's blocks is 0.42 off)."""
    n, rng = 4000, random.Random(0)
    a, b = mbv3.sample(rng), mbv3.sample(rng)
    per_arch = mbv3.gene_matrix([a.crossover(b, rng).mutate(rng, 0.2) for _ in range(n)])
    g = np.random.default_rng(0)
    A, B = mbv3.gene_matrix([a] * n), mbv3.gene_matrix([b] * n)
    vectorised = mbv3.mutate_genes(mbv3.crossover_genes(A, B, g), 0.2, g)
    for col in range(per_arch.shape[1]):
        for v in range(mbv3.gene_upper_bounds()[col] + 1):
            assert abs((per_arch[:, col] == v).mean() - (vectorised[:, col] == v).mean()) < 0.05, (col, v)
