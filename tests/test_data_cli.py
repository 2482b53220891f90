"""`dae data info` (issue 17: `--split val`, which docs/data.md describes, was refused)."""

from dae.cli import main


def test_data_info_val_split(data_root, capsys):
    assert main(["data", "info", "mnist", "--split", "val", "--root", str(data_root)]) == 0
    assert "mnist/val: images (6000, 1, 28, 28) uint8, 10 classes" in capsys.readouterr().out
    args = ["data", "info", "mnist", "--split", "val", "--val-fraction", "0.5"]
    assert main([*args, "--root", str(data_root)]) == 0
    assert "mnist/val: images (30000, 1, 28, 28)" in capsys.readouterr().out
