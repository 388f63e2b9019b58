"""The one registry (formats, layouts, RGB sources, models) and the shared key/option helpers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tmkt_data.errors import TmktError
from tmkt_data.mapping import check_keys, check_no_options, option_name
from tmkt_data.registry import Registry


class _Err(TmktError, ValueError):
    pass


def test_register_get_names_order_and_errors() -> None:
    reg: Registry[object] = Registry("widget", _Err)

    @reg.register("b")
    def b() -> None: ...

    a = object()
    assert reg.register("a", a) is a
    reg.register("a", a)  # the same object again: a no-op
    assert reg.names() == ["b", "a"] and list(reg) == ["b", "a"] and len(reg) == 2
    assert reg.get("b") is b and reg["a"] is a and "a" in reg and "c" not in reg and [] not in reg
    assert reg.items() == [("b", b), ("a", a)] and reg.values() == [b, a]
    with pytest.raises(_Err, match=r"^unknown widget 'c', expected one of b, a$"):
        reg.get("c")
    with pytest.raises(KeyError, match="unknown widget"):
        reg.get("c", error=KeyError)
    with pytest.raises(_Err, match="widget name 'a' is already registered"):
        reg.register("a", object())


def test_lazy_modules_fix_the_order() -> None:
    """Layout modules imported out of order (folder first) still list in the registry's order."""
    code = (
        "import sys, tmkt_data.layouts.folder, tmkt_data.rgb.digitpairs\n"
        "from tmkt_data.layouts import LAYOUTS\n"
        "from tmkt_data.rgb import RGB_SOURCES\n"
        "print(','.join(LAYOUTS.names())); print(','.join(RGB_SOURCES.names()))\n"
        "assert 'torch' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [
        "cifar10dvs,ncaltech101,nmnist,dvsgesture,nomniglot,cepdvs,folder",
        "cifar10,cifar100,caltech101,mnist,omniglot,imagefolder,digits,digitpairs",
    ]


def test_layout_and_rgb_modules_load_on_first_lookup() -> None:
    code = (
        "import sys, tmkt_data.layouts, tmkt_data.rgb\n"
        "assert not [m for m in sys.modules if m.startswith(('tmkt_data.layouts.', 'tmkt_data.rgb.'))\n"
        "            and m != 'tmkt_data.layouts.base'], sorted(sys.modules)\n"
        "from tmkt_data.layouts import LAYOUTS\n"
        "assert 'nmnist' in LAYOUTS and 'tmkt_data.layouts.nmnist' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_four_registries() -> None:
    from tmkt_data.formats import FORMATS
    from tmkt_data.layouts import LAYOUTS
    from tmkt_data.rgb import RGB_SOURCES

    assert FORMATS.names() == [
        "aedat4",
        "aedat2",
        "aedat31",
        "atis_bin",
        "npy",
        "hdf5",
        "mat",
    ]  # detection order
    assert all(FORMATS.get(n).NAME == n for n in FORMATS)
    assert all(LAYOUTS.get(n).__module__ == f"tmkt_data.layouts.{n}" for n in LAYOUTS)
    assert RGB_SOURCES.get("cifar100").__module__ == "tmkt_data.rgb.cifar"
    pytest.importorskip("torch")
    from tmkt_train.models import MODELS, ModelError, create_model, list_models, register_model

    assert MODELS.names() == ["vgg_snn", "resnet18", "scnn", "demo"]
    assert list_models() == sorted(MODELS.names())
    with pytest.raises(ModelError, match=r"^unknown model 'nope', expected one of vgg_snn, resnet18"):
        create_model("nope", 3)
    with pytest.raises(ModelError, match="model name 'demo' is already registered"):
        register_model("demo", lambda num_classes, in_channels=2: None)


def test_check_keys_and_option_names() -> None:
    check_keys({"a": 1}, ("a", "b"), "t", _Err)
    with pytest.raises(_Err, match=r"^t: unknown key\(s\) x, y; expected some of b, a$"):
        check_keys({"y": 1, "x": 2, "a": 3}, ("b", "a"), "t", _Err)
    with pytest.raises(_Err, match=r"expected some of a, b$"):  # a set is listed sorted
        check_keys({"x": 1}, {"b", "a"}, "t", _Err)
    check_no_options("mnist", {}, _Err)
    with pytest.raises(_Err, match=r"^mnist: unknown option\(s\) a, b$"):
        check_no_options("mnist", {"b": 1, "a": 2}, _Err)
    flags = {"options": "--option"}
    assert option_name("frames") == "--frames"
    assert option_name("shard_samples") == "--shard-samples"
    assert option_name("options.sensor_size", flags=flags) == "--option sensor_size"
    assert option_name("frames", "r.toml [convert]") == "r.toml [convert] frames ="


def test_the_wrappers_keep_their_names() -> None:
    from tmkt_data.convert import option_name as convert_option_name
    from tmkt_data.synth import synth_option_name

    assert convert_option_name("options.train_ratio") == "--option train_ratio"
    assert convert_option_name("filters") == "--filter"
    assert synth_option_name("options") == "--rgb-option"
    assert synth_option_name("leak_rate_hz") == "--leak-hz"
    assert synth_option_name("limit", "r.toml [synth]") == "r.toml [synth] limit ="
