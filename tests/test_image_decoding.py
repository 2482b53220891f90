"""Image decoding keeps what the file holds (issue 17): 16-bit gray scaled, not clipped; alpha
composited on the stated background; gray mixed with RGB converted; a decompression bomb is
one error."""

import numpy as np
import pytest
from PIL import Image

from dae.data.formats import ALPHA_BACKGROUND, DataFormatError, decode_images


def test_16_bit_png_is_scaled_to_8_bits(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    path = tmp_path / "ramp.png"
    Image.fromarray(ramp).save(path)  # mode I;16
    assert Image.open(path).mode.startswith("I")
    arr = decode_images([path])[0, 0]
    expected = (ramp.astype(np.int64) * 255 + 32767) // 65535
    assert np.array_equal(arr, expected)
    assert (arr == 255).mean() < 0.01  # convert("L") made 97 % of this ramp 255


def test_rgba_is_composited_on_the_stated_background(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200  # red
    rgba[:, :2, 3] = 255  # left half opaque, right half fully transparent
    rgba[:, 2:, 3] = 0
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    arr = decode_images([path])[0]  # (3, H, W)
    assert arr[:, :, :2].reshape(3, -1).T.tolist() == [[200, 0, 0]] * 8
    assert arr[:, :, 2:].reshape(3, -1).T.tolist() == [list(ALPHA_BACKGROUND)] * 8


def test_gray_mixed_with_rgb_is_converted_with_a_line(tmp_path, capsys):
    (tmp_path / "c").mkdir()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "c" / "a.png")
    Image.new("L", (8, 8), 77).save(tmp_path / "c" / "b.png")
    files = sorted((tmp_path / "c").iterdir())
    images = decode_images(files, size=8)  # image_size set: used to advise "pass image_size"
    assert images.shape == (2, 3, 8, 8) and (images[1] == 77).all()
    assert "1 of 2 images are grayscale, the rest RGB; converting" in capsys.readouterr().err


def test_decompression_bomb_is_one_error(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels: over the limit
    with pytest.raises(DataFormatError, match=r"big.png: too large to decode safely"):
        decode_images([path])
