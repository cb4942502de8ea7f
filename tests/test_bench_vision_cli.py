"""The benchmark end to end on image data given in a real on-disk layout, with loader options from
the command line."""
import json

from test_data_vision import write_cifar10, write_cifar100
from unlearnkit import load_data
from unlearnkit.cli import main


def _records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_bench_on_a_cifar10_folder(tmp_path, capsys):
    out = tmp_path / "run"
    folder = write_cifar10(tmp_path, per_batch=6)  # labels drawn from the fixture module's shared generator
    labels = load_data(f"cifar10:{folder}").train.y
    forgotten = int(labels[0])  # a class the fixture surely has
    count = int((labels == forgotten).sum())
    code = main(["bench", "--data", f"cifar10:{folder}", "--model", "mlp",
                 "--forget", f"class:{forgotten}", "--methods", "ga", "--audits", "accuracy", "--quick",
                 "--set", "train.epochs=1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    records = _records(out)
    assert [r["method"] for r in records] == ["retrain", "ga"]
    assert all(r["status"] == "ok" for r in records)
    # every image of that class among the 30 training images is forgotten, the rest retained
    assert records[1]["forget_size"] == count and records[1]["retain_size"] == 30 - count


def test_bench_subclass_with_a_group_map_option(tmp_path, capsys):
    folder = write_cifar100(tmp_path)
    groups = tmp_path / "halves.json"
    groups.write_text(json.dumps({str(k): int(k >= 50) for k in range(100)}))
    out = tmp_path / "run"
    code = main(["bench", "--data", f"cifar100:{folder}", "--data-option", f"groups={groups}", "--model", "mlp",
                 "--forget", "subclass:3", "--methods", "ga", "--audits", "accuracy", "--quick",
                 "--set", "train.epochs=1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    records = _records(out)
    assert records[0]["data_options"] == {"groups": str(groups)}
    assert f"groups={groups}" in records[0]["cell"]
    assert records[1]["forget_size"] == 2 and records[1]["status"] == "ok"


def test_bad_data_option_is_named(tmp_path, capsys):
    folder = write_cifar10(tmp_path)
    assert main(["bench", "--data", f"cifar10:{folder}", "--data-option", "colour=blue", "--out", str(tmp_path / "o")]) == 2
    assert "colour" in capsys.readouterr().err
    assert main(["bench", "--data", f"cifar10:{folder}", "--data-option", "nokey", "--out", str(tmp_path / "o")]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_preset_fills_the_protocol_and_prints_its_layout(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["bench", "--preset", "cifar10-resnet18", "--data", f"cifar10:{write_cifar10(tmp_path, per_batch=6)}",
                 "--model", "mlp", "--methods", "ga", "--quick", "--set", "train.epochs=1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "MIA-Efficacy" in printed and "Avg. Gap" in printed and "RTE (s)" in printed
    records = _records(out)
    assert {r["scenario"] for r in records} == {"class:0", "random:0.1"}  # the protocol's scenarios
    assert records[0]["train_config"]["lr"] == 0.1 and records[0]["train_config"]["batch_size"] == 256
    assert records[0]["train_config"]["epochs"] == 1  # the user's --set wins over the preset
    assert records[0]["model"] == "mlp"  # so does --model
    assert set(records[0]["audits"]) == {"accuracy", "mia"}


def test_preset_on_the_wrong_data_is_refused(tmp_path, capsys):
    assert main(["bench", "--preset", "cifar10-resnet18", "--out", str(tmp_path)]) == 2
    assert "cifar10:PATH" in capsys.readouterr().err
    assert main(["bench", "--preset", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown preset" in capsys.readouterr().err
