"""The local-path image loaders: cifar10, cifar100, tinyimagenet, mnist, fashion_mnist, imagefolder, hf.

Every fixture is written here, in the data set's published on-disk layout, with a few images:
CIFAR batches pickled the way Python 2 wrote them (protocol 2, ``str`` as BINSTRING, the
``numpy.core.multiarray`` global) and the way Python 3 writes protocol 2 (``_codecs.encode``);
JPEG/PNG files with Pillow; IDX files byte by byte; a ``save_to_disk`` DatasetDict.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from unlearnkit.data import load_data, make_split
from unlearnkit.data.images import read_group_map
from unlearnkit.errors import ConfigError, DataError

RNG = np.random.default_rng(0)


# --- writers for the published layouts --------------------------------------------------------

class Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote the CIFAR files: every str (and bytes) as a BINSTRING."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _binstring(self, data: bytes) -> None:
        n = len(data)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + data)

    def save_bytes(self, obj):
        self._binstring(obj)
        self.memoize(obj)

    def save_str(self, obj):
        if not obj.isascii():
            return pickle._Pickler.save_str(self, obj)
        self._binstring(obj.encode())
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    # numpy < 2 (what wrote the real files) names its reconstructor numpy.core.multiarray
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_cifar10(parent, per_batch=4):
    root = parent / "cifar-10-batches-py"
    root.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [int(v) for v in RNG.integers(0, 10, per_batch)]
        batch = {"batch_label": f"batch {name}", "labels": labels,
                 "data": RNG.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "filenames": [f"img_{i}.png" for i in range(per_batch)]}
        (root / name).write_bytes(py2_pickle(batch))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
            "num_cases_per_batch": per_batch, "num_vis": 3072}
    (root / "batches.meta").write_bytes(py2_pickle(meta))
    return root


def coarse_of(fine):
    return (fine * 7) % 20  # a bijection on residues mod 20: 5 fine classes per superclass


def write_cifar100(parent):
    """Python 3's protocol-2 pickles (bytes through _codecs.encode), keys as bytes like the originals."""
    root = parent / "cifar-100-python"
    root.mkdir(parents=True)
    for name, per_class in (("train", 2), ("test", 1)):
        fine = np.repeat(np.arange(100), per_class)
        batch = {b"filenames": [b"f.png"] * len(fine), b"batch_label": name.encode(),
                 b"fine_labels": fine.tolist(), b"coarse_labels": coarse_of(fine).tolist(),
                 b"data": RNG.integers(0, 256, (len(fine), 3072), dtype=np.uint8)}
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"fine_label_names": [f"fine{k}".encode() for k in range(100)],
            b"coarse_label_names": [f"coarse{g}".encode() for g in range(20)]}
    (root / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root


def save_image(path, array, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def rgb(h=64, w=64):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


WNIDS = ["n02", "n01", "n03"]  # deliberately unsorted in wnids.txt


def write_tiny(parent, per_class=2, val_per_class=1):
    root = parent / "tiny-imagenet-200"
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text("n00\tentity\nn01\tgoldfish, Carassius auratus\nn02\tsalamander\n"
                                    "n03\tbullfrog, Rana catesbeiana\nn04\tunused\n")
    for wnid in WNIDS:
        for i in range(per_class):
            save_image(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", rgb(), quality=90)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    lines = []
    for i in range(val_per_class * len(WNIDS)):
        wnid = WNIDS[i % len(WNIDS)]
        save_image(root / "val" / "images" / f"val_{i}.JPEG", rgb(), quality=90)
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    # a greyscale JPEG, as ~2 % of the real files are
    save_image(root / "train" / "n01" / "images" / "n01_0.JPEG", RNG.integers(0, 256, (64, 64), dtype=np.uint8))
    return root


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(folder, *, gz, n_train=6, n_test=4):
    folder.mkdir(parents=True)
    arrays = {"train-images-idx3-ubyte": RNG.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": np.arange(n_train) % 10,
              "t10k-images-idx3-ubyte": RNG.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": (np.arange(n_test) + 3) % 10}
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


def write_imagefolder(root, classes=("cat", "dog", "emu"), per_class=2, size=8):
    for split in ("train", "test"):
        for name in classes:
            for i in range(per_class):
                save_image(root / split / name / f"{i}.png", rgb(size, size))
    save_image(root / "train" / "dog" / "grey.png", RNG.integers(0, 256, (size, size), dtype=np.uint8))
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    return root


# --- CIFAR ------------------------------------------------------------------------------------

def test_cifar10_reads_python2_pickles_from_folder_or_parent(tmp_path):
    folder = write_cifar10(tmp_path)
    for path in (folder, tmp_path):
        source = load_data(f"cifar10:{path}")
        assert len(source.train) == 20 and len(source.test) == 4
        assert source.train.x.dtype == torch.uint8 and source.train.x.shape == (20, 3, 32, 32)
        assert source.input_shape == (3, 32, 32) and source.num_classes == 10
        assert source.class_names[0] == "airplane" and source.class_names[9] == "truck"
        assert source.pipeline.crop_padding == 4 and source.pipeline.hflip
        assert source.pipeline.mean == pytest.approx((0.4914, 0.4822, 0.4465))
        assert source.default_scenarios == ("class:0", "random:0.1")
    # the rows are the pickled pixels, channel-major (R plane, G plane, B plane)
    first = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")
    assert torch.equal(source.train.x[0], torch.from_numpy(first[b"data"][0].reshape(3, 32, 32)))
    assert source.train.y[:4].tolist() == first[b"labels"]


def test_cifar100_fine_labels_groups_and_subclass_forgetting(tmp_path):
    source = load_data(f"cifar100:{write_cifar100(tmp_path)}")
    assert source.num_classes == 100 and source.class_names[5] == "fine5"
    assert source.train.x.shape == (200, 3, 32, 32) and source.train.x.dtype == torch.uint8
    assert source.train.y.tolist() == np.repeat(np.arange(100), 2).tolist()
    assert source.groups == {k: coarse_of(k) for k in range(100)}
    split = make_split(source, "subclass:3")
    assert split.source.num_classes == 20
    group = coarse_of(3)
    assert split.forget_idx.tolist() == [6, 7]
    assert (split.source.train.y[split.forget_idx] == sorted(set(source.groups.values())).index(group)).all()
    fine = source.train.y[split.related_idx]
    assert sorted(set(fine.tolist())) == [k for k in range(100) if coarse_of(k) == group and k != 3]
    assert int(split.test_forget_mask.sum()) == 1


def test_cifar100_groups_option_overrides_the_superclasses(tmp_path):
    folder = write_cifar100(tmp_path)
    groups = tmp_path / "halves.json"
    groups.write_text(json.dumps({f"fine{k}" if k % 2 else str(k): ("low" if k < 50 else "high") for k in range(100)}))
    source = load_data(f"cifar100:{folder}", groups=str(groups))
    assert source.groups == {k: (1 if k < 50 else 0) for k in range(100)}  # names numbered in sorted order


def evil_pickle(marker):
    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)
    return pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2)


def test_malicious_cifar_pickle_is_refused_without_running(tmp_path):
    folder = write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    (folder / "data_batch_2").write_bytes(evil_pickle(marker))
    with pytest.raises(DataError, match=r"data_batch_2.*refused.*system"):
        load_data(f"cifar10:{folder}")
    assert not marker.exists()
    # the same for a global that is not a callable numpy needs, e.g. builtins.eval
    (folder / "data_batch_2").write_bytes(b"\x80\x02cbuiltins\neval\nq\x00X\x06\x00\x00\x001+1==2q\x01\x85q\x02Rq\x03.")
    with pytest.raises(DataError, match=r"data_batch_2.*builtins\.eval"):
        load_data(f"cifar10:{folder}")


@pytest.mark.parametrize("damage, expect", [
    ("truncate", r"data_batch_3: not a readable CIFAR"),
    ("missing", r"data_batch_3: not found"),
    ("wrong_keys", r"data_batch_3: no 'labels' entry"),
    ("wrong_shape", r"data_batch_3: 'data' is a uint8 array \[4, 100\]"),
])
def test_cifar10_damaged_batches_are_named(tmp_path, damage, expect):
    folder = write_cifar10(tmp_path)
    target = folder / "data_batch_3"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:500])
    elif damage == "missing":
        target.unlink()
    elif damage == "wrong_keys":
        target.write_bytes(py2_pickle({"data": np.zeros((4, 3072), np.uint8), "fine_labels": [0] * 4}))
    else:
        target.write_bytes(py2_pickle({"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4}))
    with pytest.raises(DataError, match=expect):
        load_data(f"cifar10:{folder}")


def test_cifar100_damaged_meta_and_labels_are_named(tmp_path):
    folder = write_cifar100(tmp_path)
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"x"] * 3}, protocol=2))
    with pytest.raises(DataError, match=r"meta: 'fine_label_names' must list 100"):
        load_data(f"cifar100:{folder}")
    batch = pickle.loads((folder / "test").read_bytes(), encoding="bytes")
    batch[b"coarse_labels"][0] = (batch[b"coarse_labels"][0] + 1) % 20  # fine class 0 in two superclasses
    (folder / "test").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=r"test: fine class 0 appears with superclasses"):
        load_data(f"cifar100:{folder}")


def test_missing_folder_and_unknown_option(tmp_path):
    with pytest.raises(DataError, match="cifar10 needs a folder"):
        load_data("cifar10")
    with pytest.raises(DataError, match="folder not found"):
        load_data(f"cifar10:{tmp_path / 'nowhere'}")
    with pytest.raises(ConfigError, match="does not take the option"):
        load_data(f"mnist:{tmp_path}", colour=True)


# --- Tiny-ImageNet ----------------------------------------------------------------------------

def test_tinyimagenet_layout_greyscale_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    write_tiny(tmp_path)
    source = load_data(f"tinyimagenet:{tmp_path}")
    assert source.train.x.shape == (6, 3, 64, 64) and source.train.x.dtype == torch.uint8
    assert source.test.x.shape == (3, 3, 64, 64)
    assert source.class_names == ["goldfish", "salamander", "bullfrog"]  # sorted wnids n01, n02, n03
    assert source.train.y.tolist() == [0, 0, 1, 1, 2, 2]
    assert source.test.y.tolist() == [1, 0, 2]  # val_0 → n02, val_1 → n01, val_2 → n03
    assert source.pipeline.crop_padding == 4 and source.pipeline.mean == pytest.approx((0.4802, 0.4481, 0.3975))
    grey = source.train.x[0]  # train/n01/images/n01_0.JPEG, written greyscale
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert not torch.equal(source.train.x[1][0], source.train.x[1][1])

    cached = sorted((tmp_path / "cache" / "images").glob("tinyimagenet-*.npy"))
    assert [p.name.rsplit("-", 1)[1] for p in cached] == ["test.npy", "train.npy"]

    def no_decoding(*args, **kwargs):
        raise AssertionError("the second load must come from the cache")

    monkeypatch.setattr("unlearnkit.data.tinyimagenet.decode_all", no_decoding)
    again = load_data(f"tinyimagenet:{tmp_path / 'tiny-imagenet-200'}")
    assert torch.equal(again.train.x, source.train.x) and torch.equal(again.test.x, source.test.x)
    assert torch.equal(again.train.y, source.train.y)


def test_tinyimagenet_wnid_group_keys(tmp_path):
    root = write_tiny(tmp_path)
    groups = tmp_path / "g.json"
    groups.write_text(json.dumps({"n01": 0, "salamander": 1, "2": 1}))
    assert load_data(f"tinyimagenet:{root}", groups=str(groups), cache=False).groups == {0: 0, 1: 1, 2: 1}


def test_tinyimagenet_bad_files_are_named(tmp_path):
    root = write_tiny(tmp_path)
    odd = root / "train" / "n02" / "images" / "n02_1.JPEG"
    save_image(odd, rgb(32, 32))
    with pytest.raises(DataError, match=r"n02_1\.JPEG: image is 32×32, expected 64×64"):
        load_data(f"tinyimagenet:{root}", cache=False)
    resized = load_data(f"tinyimagenet:{root}", cache=False, resize=True)
    assert resized.train.x.shape == (6, 3, 64, 64)

    data = (root / "val" / "images" / "val_1.JPEG").read_bytes()
    (root / "val" / "images" / "val_1.JPEG").write_bytes(data[: len(data) // 2])  # truncated JPEG
    with pytest.raises(DataError, match=r"val_1\.JPEG: cannot decode"):
        load_data(f"tinyimagenet:{root}", resize=True)

    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn09\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=r"val_annotations\.txt: line 1 .*'n09'"):
        load_data(f"tinyimagenet:{root}")
    (root / "words.txt").write_text("n01\tgoldfish\n")
    with pytest.raises(DataError, match=r"words\.txt: no line for the class ids n02, n03"):
        load_data(f"tinyimagenet:{root}")
    (root / "wnids.txt").unlink()
    with pytest.raises(DataError, match=r"wnids\.txt: not found"):
        load_data(f"tinyimagenet:{root}")


# --- MNIST / Fashion-MNIST --------------------------------------------------------------------

def test_mnist_gzipped_and_fashion_plain(tmp_path):
    arrays = write_idx(tmp_path / "mnist", gz=True)
    source = load_data(f"mnist:{tmp_path / 'mnist'}")
    assert source.train.x.shape == (6, 1, 28, 28) and source.train.x.dtype == torch.uint8
    assert torch.equal(source.train.x[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert source.test.y.tolist() == [3, 4, 5, 6]
    assert source.pipeline.mean == (0.1307,) and not source.pipeline.augments
    assert source.class_names == [str(d) for d in range(10)]

    write_idx(tmp_path / "fm" / "FashionMNIST" / "raw", gz=False)  # torchvision's folder
    fashion = load_data(f"fashion_mnist:{tmp_path / 'fm'}")
    assert fashion.input_shape == (1, 28, 28) and fashion.class_names[9] == "Ankle boot"
    assert fashion.pipeline.std == (0.3530,)


def test_idx_damage_is_named(tmp_path):
    folder = tmp_path / "m"
    write_idx(folder, gz=False)
    images = folder / "train-images-idx3-ubyte"
    good = images.read_bytes()
    images.write_bytes(good[:-10])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: truncated"):
        load_data(f"mnist:{folder}")
    images.write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: not an IDX file"):
        load_data(f"mnist:{folder}")
    images.write_bytes(good)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: 3 labels for the 4 images"):
        load_data(f"mnist:{folder}")
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: not found"):
        load_data(f"mnist:{folder}")
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(4)))[:-12])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: cannot read"):
        load_data(f"mnist:{folder}")


# --- image folders ----------------------------------------------------------------------------

def test_imagefolder_rgb_groups_and_stats(tmp_path):
    root = write_imagefolder(tmp_path / "pets")
    (root / "groups.json").write_text(json.dumps({"cat": "mammal", "dog": "mammal", "emu": "bird"}))
    source = load_data(f"imagefolder:{root}")
    assert source.class_names == ["cat", "dog", "emu"]
    assert source.train.x.shape == (7, 3, 8, 8) and source.test.x.shape == (6, 3, 8, 8)
    assert source.train.y.tolist() == [0, 0, 1, 1, 1, 2, 2]
    grey = source.train.x[4]  # train/dog/grey.png sorts after 0.png, 1.png
    assert torch.equal(grey[0], grey[2])
    assert source.groups == {0: 1, 1: 1, 2: 0}
    pixels = source.train.x.double() / 255
    assert source.pipeline.mean == pytest.approx(pixels.mean(dim=(0, 2, 3)).tolist())
    assert source.pipeline.std == pytest.approx(pixels.std(dim=(0, 2, 3), unbiased=False).tolist())
    assert make_split(source, "subclass:0").related_idx.tolist() == [2, 3, 4]


def test_imagefolder_all_grey_is_one_channel(tmp_path):
    for split in ("train", "test"):
        for name in ("a", "b"):
            save_image(tmp_path / split / name / "x.png", RNG.integers(0, 256, (5, 6), dtype=np.uint8))
    deep = np.full((5, 6), 65535, dtype=np.uint16)
    deep[0, 0] = 0
    Image.fromarray(deep).save(tmp_path / "test" / "b" / "deep.png")  # a 16-bit greyscale PNG
    source = load_data(f"imagefolder:{tmp_path}")
    assert source.input_shape == (1, 5, 6) and len(source.pipeline.mean) == 1
    assert Image.open(tmp_path / "test" / "b" / "deep.png").mode.startswith("I")
    assert source.test.x[1, 0, 0, :2].tolist() == [0, 255]  # 16-bit range scaled to 8 bits, not clipped


def test_imagefolder_errors_name_the_file(tmp_path):
    root = write_imagefolder(tmp_path / "p")
    save_image(root / "test" / "emu" / "big.png", rgb(9, 8))
    with pytest.raises(DataError, match=r"big\.png: image is 8×9 but .*0\.png is 8×8"):
        load_data(f"imagefolder:{root}")
    (root / "test" / "emu" / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match=r"big\.png: not a readable image"):
        load_data(f"imagefolder:{root}")
    (root / "test" / "emu" / "big.png").unlink()
    (root / "test" / "emu").rename(root / "test" / "ostrich")
    with pytest.raises(DataError, match=r"test: its class folders differ .*missing emu; not in train/: ostrich"):
        load_data(f"imagefolder:{root}")
    (root / "test" / "ostrich").rename(root / "test" / "emu")
    (root / "groups.json").write_text(json.dumps({"cat": 0, "dog": 1}))
    with pytest.raises(DataError, match=r"groups\.json: no group for the classes emu"):
        load_data(f"imagefolder:{root}")


# --- Hugging Face save_to_disk ----------------------------------------------------------------

def test_hf_image_and_array_columns(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["ant", "bee"])})
    pictures = [Image.fromarray(rgb(6, 6)) for _ in range(4)] + [Image.fromarray(rgb(6, 6)[..., 0])]
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"img": pictures[:3], "label": [0, 1, 1]}, features=features),
        "test": datasets.Dataset.from_dict({"img": pictures[3:], "label": [1, 0]}, features=features),
    })
    dd.save_to_disk(str(tmp_path / "hf"))
    source = load_data(f"hf:{tmp_path / 'hf'}")
    assert source.class_names == ["ant", "bee"] and source.num_classes == 2
    assert source.train.x.shape == (3, 3, 6, 6) and source.train.x.dtype == torch.uint8
    assert torch.equal(source.train.x[1], torch.from_numpy(np.array(pictures[1]).transpose(2, 0, 1)))
    grey = source.test.x[1]
    assert torch.equal(grey[0], grey[1])
    assert source.test.y.tolist() == [1, 0]

    arrays = datasets.DatasetDict({
        split: datasets.Dataset.from_dict({"pixels": RNG.integers(0, 256, (n, 4, 4)).tolist(), "labels": labels})
        for split, n, labels in (("train", 3, [0, 2, 1]), ("valid", 2, [2, 2]))
    })
    arrays.save_to_disk(str(tmp_path / "arr"))
    with pytest.raises(DataError, match=r"no 'test' split \(splits: train, valid\)"):
        load_data(f"hf:{tmp_path / 'arr'}")
    with pytest.raises(DataError, match=r"no image column"):
        load_data(f"hf:{tmp_path / 'arr'}", test_split="valid")
    source = load_data(f"hf:{tmp_path / 'arr'}", test_split="valid", image_column="pixels")
    assert source.train.x.shape == (3, 1, 4, 4) and source.train.x.dtype == torch.uint8
    assert source.class_names == ["0", "1", "2"] and source.test.y.tolist() == [2, 2]
    with pytest.raises(DataError, match=r"not a dataset folder written by save_to_disk"):
        load_data(f"hf:{tmp_path}")


# --- the group map helper ---------------------------------------------------------------------

def test_group_map_file_rules(tmp_path):
    path = tmp_path / "g.json"
    names = ["a", "b", "c"]
    path.write_text(json.dumps({"a": 3, "1": 3, "c": 7}))
    assert read_group_map(path, names) == {0: 3, 1: 3, 2: 7}
    for content, message in (('{"a": 1, "b": "x", "c": 1}', "all integers or all names"),
                             ('{"a": 1, "zz": 1, "c": 1}', "'zz' is neither a class name"),
                             ('{"a": 1, "5": 1}', "index 5 is out of range"),
                             ('{"a": 1, "0": 2, "b": 1, "c": 1}', "listed twice"),
                             ("[1, 2]", "expected a non-empty JSON object"),
                             ("{oops", "not valid JSON")):
        path.write_text(content)
        with pytest.raises(DataError, match=rf"g\.json: .*{message}"):
            read_group_map(path, names)


def test_thread_pool_decoding_matches_serial_and_names_a_bad_file(tmp_path):
    root = tmp_path / "many"
    for split, count in (("train", 70), ("test", 2)):
        for i in range(count):
            save_image(root / split / ("a" if i % 2 else "b") / f"{i:03d}.png", rgb(4, 4))
    threaded = load_data(f"imagefolder:{root}", workers=2, cache=False)
    serial = load_data(f"imagefolder:{root}", workers=1, cache=False)
    assert torch.equal(threaded.train.x, serial.train.x) and threaded.train.x.shape == (70, 3, 4, 4)
    bad = root / "train" / "a" / "041.png"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(DataError, match=r"041\.png: cannot decode"):
        load_data(f"imagefolder:{root}", workers=2, cache=False)
