"""Generating a release: every spectrum a pure function of (config, index).

A spectrum's random choices come from ``numpy.random.default_rng([seed, index])``,
and its optional 2D stripes' and cutouts' from streams of their own
(``product_rng``), so turning those on leaves the 1D bytes unchanged. Any worker
can make any index in any order and the bytes are the same: chunks
run in one process (``raysurvey synth``) or as Ray tasks (``jobs/make_release.py``)
with identical output. Files go straight to storage; manifest rows come back per
chunk and are streamed into ``manifest.parquet`` in index order, so memory stays
bounded whatever ``n`` is.
"""

from __future__ import annotations

import functools
import os
import posixpath
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raysurvey.io.sdss import sdss_specobjid
from raysurvey.manifest import MANIFEST_SCHEMA, manifest_table
from raysurvey.synth.config import SURVEY_FRACTIONS, SynthConfig
from raysurvey.synth.observe import SURVEY_MODELS, ObservedSpectrum, observe
from raysurvey.synth.photometry import simulate_cutout, write_cutout
from raysurvey.synth.source import STAR_KINDS, RestFrameSpectrum, SpectrumSource
from raysurvey.synth.stripes import simulate_stripes, write_stripes
from raysurvey.synth.variety import HOST_MAX_Z, galaxy_redshift, qso_redshift, qso_variety
from raysurvey.synth.writers import Labels, product_cards, write_lamost, write_sdss

C_KMS = 299_792.458
MANIFEST_NAME = "manifest.parquet"
TYPE_ORDER = ("O", "B", "A", "F", "G", "K", "M")
#: Seed-sequence tags of the 2D products' random streams. Four words, the last nonzero:
#: numpy pads shorter seeds with zeros, so [seed, index, 2] would equal the balanced
#: mix's [seed, 7, block] stream for index 7 and block 2.
STRIPES_STREAM = (2, 1)
CUTOUT_STREAM = (3, 1)
#: ``SynthConfig.extra[BOTH_SURVEYS]``: the fraction of a mixed release's spectra that
#: re-observe an earlier object (within the previous ``REPEAT_LOOKBACK`` spectra) with the
#: other survey: same kind, redshift and position within ~0.3 arcsec, so a LAMOST x SDSS
#: cross-match finds real pairs. Absent or 0 (the default): releases are unchanged.
BOTH_SURVEYS = "both_surveys"
REPEAT_LOOKBACK = 64
REPEAT_SCATTER_ARCSEC = 0.3
REPEAT_STREAM = 13
STRIPES_DIR, CUTOUTS_DIR = "stripes", "cutouts"


def make_source(templates: str | None) -> SpectrumSource:
    """The Redrock source for a template directory, else the built-in physical model."""
    return _cached_source(os.path.abspath(templates) if templates else None)


@functools.cache
def _cached_source(templates: str | None) -> SpectrumSource:
    if templates:
        from raysurvey.synth.templates import RedrockSource

        return RedrockSource(templates)
    from raysurvey.synth.physical import PhysicalSource

    return PhysicalSource()


@dataclass(frozen=True)
class Plan:
    """The draws that decide one spectrum before any flux is made."""

    index: int
    kind: str
    survey: str
    layout: str  # lamost_image | lamost_table | SPECOBJ | SPALL
    snr_r: float
    z: float
    ra: float
    dec: float


def kind_for(config: SynthConfig, index: int) -> str:
    """The object kind of spectrum ``index`` under the configured mix."""
    kinds = config.classes
    if config.mix == "balanced":
        block, slot = divmod(index, len(kinds))
        order = np.random.default_rng([config.seed, 7, block]).permutation(len(kinds))
        return kinds[int(order[slot])]
    weights = np.array([SURVEY_FRACTIONS[k] for k in kinds])
    rng = np.random.default_rng([config.seed, 11, index])
    return kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]


def plan(config: SynthConfig, index: int, rng: np.random.Generator) -> Plan:
    kind = kind_for(config, index)
    survey = config.survey if config.survey != "mixed" else ("lamost", "sdss")[int(rng.integers(2))]
    if survey == "lamost":
        choice = config.lamost_layout
        layout = (
            f"lamost_{choice}"
            if choice != "mixed"
            else ("lamost_image", "lamost_table")[int(rng.integers(2))]
        )
    else:
        layout = (
            config.sdss_hdu
            if config.sdss_hdu != "mixed"
            else ("SPECOBJ", "SPALL")[int(rng.integers(2))]
        )
    while True:  # truncated log-normal S/N
        snr = float(rng.lognormal(np.log(config.snr_median), config.snr_sigma))
        if config.snr_min <= snr <= config.snr_max:
            break
    if kind in STAR_KINDS:
        z = float(np.clip(rng.normal(0.0, 40.0), -500.0, 500.0)) / C_KMS
    elif config.realism != "clean" and kind == "GALAXY":
        boss = survey == "sdss" and layout == "SPALL"
        z, _ = galaxy_redshift(rng, boss, nearby=config.realism == "survey-full")
    elif config.realism != "clean":
        z = qso_redshift(rng)
    elif kind == "GALAXY":
        shape, scale = (2.0, 0.05) if survey == "lamost" else (2.5, 0.06)
        z = float(min(0.02 + rng.gamma(shape, scale), 0.8))
    else:
        z = float(np.clip(rng.lognormal(np.log(1.3), 0.55), 0.1, 4.0))
    ra = float(rng.uniform(0.0, 360.0))
    lo, hi = np.radians([-10.0, 70.0])
    dec = float(np.degrees(np.arcsin(rng.uniform(np.sin(lo), np.sin(hi)))))
    first = repeat_of(config, index)
    if first is not None:  # own stream: the draws above (and after) stay as they were
        earlier = plan(config, first, np.random.default_rng([config.seed, first]))
        if earlier.survey != survey:
            kind, z = earlier.kind, earlier.z
            scatter = np.random.default_rng([config.seed, REPEAT_STREAM, index, 1]).normal(
                0.0, REPEAT_SCATTER_ARCSEC / 3600.0, 2
            )
            dec = float(np.clip(earlier.dec + scatter[1], -90.0, 90.0))
            ra = float((earlier.ra + scatter[0] / max(np.cos(np.radians(dec)), 1e-6)) % 360.0)
    return Plan(index, kind, survey, layout, snr, z, ra, dec)


def repeat_of(config: SynthConfig, index: int) -> int | None:
    """The earlier spectrum that spectrum ``index`` may re-observe (``BOTH_SURVEYS``).

    None unless the release is mixed and asks for repeats; an index that is itself a
    repeat is never re-observed, so every pair is (first observation, repeat). The
    repeat is made only when the two spectra's surveys differ (see ``plan``).
    """
    fraction = float((config.extra or {}).get(BOTH_SURVEYS, 0.0))
    if fraction <= 0.0 or config.survey != "mixed" or index == 0:
        return None
    rng = np.random.default_rng([config.seed, REPEAT_STREAM, index])
    if rng.random() >= fraction:
        return None
    first = index - 1 - int(rng.integers(min(index, REPEAT_LOOKBACK)))
    if first > 0 and np.random.default_rng([config.seed, REPEAT_STREAM, first]).random() < fraction:
        return None  # the earlier one is a repeat candidate itself: no chains
    return first


def true_labels(rest: RestFrameSpectrum) -> tuple[str, str | None]:
    """Truth class3 and canonical subclass ("G5", "M3", "Carbon", "WD", ...)."""
    if rest.kind in STAR_KINDS:
        return "STAR", rest.subclass
    return rest.kind, rest.subclass


def survey_subclass(survey: str, kind: str, subclass: str | None, logg: float | None) -> str | None:
    """Subclass as each pipeline spells it (LAMOST: "dM3"/"gM3", "O"; SDSS: "M3", "O7")."""
    if subclass is None or survey != "lamost":
        return subclass
    if kind == "M":
        return ("gM" if logg is not None and logg < 3.5 else "dM") + subclass[1:]
    if kind == "O":
        return "O"
    return subclass


def pipeline_labels(
    p: Plan, rest: RestFrameSpectrum, rng: np.random.Generator, noise: float
) -> tuple[str, str | None, float, float, int]:
    """What the survey pipeline would publish: class, subclass, z, z_err, zwarning."""
    true_class, _ = true_labels(rest)
    subclass = survey_subclass(p.survey, rest.kind, rest.subclass, rest.logg)
    z_err = {"STAR": 2e-5, "GALAXY": 1e-4, "QSO": 1e-3}[true_class] * max(1.0, 20.0 / p.snr_r)
    z = p.z + rng.normal(0.0, z_err)
    zwarning = 0
    cls = true_class
    if rng.random() < noise:
        if true_class == "STAR" and rest.kind in TYPE_ORDER and rng.random() < 0.8:
            position = TYPE_ORDER.index(rest.kind) + int(rng.choice([-1, 1]))
            neighbour = TYPE_ORDER[int(np.clip(position, 0, len(TYPE_ORDER) - 1))]
            subclass = survey_subclass(
                p.survey, neighbour, f"{neighbour}{rng.integers(10)}", rest.logg
            )
        else:  # a wrong class altogether, and so a wrong redshift
            cls = str(rng.choice([c for c in ("STAR", "GALAXY", "QSO") if c != true_class]))
            subclass = {
                "STAR": f"{rng.choice(list('AFGK'))}{rng.integers(10)}",
                "GALAXY": None,
                "QSO": "BROADLINE",
            }[cls]
            z = {
                "STAR": rng.normal(0, 1e-4),
                "GALAXY": rng.uniform(0.01, 0.5),
                "QSO": rng.uniform(0.3, 3.0),
            }[cls]
            zwarning = 4 if rng.random() < 0.5 else 0
    if p.snr_r < 3.0:
        zwarning |= 4  # SMALL_DELTA_CHI2 at low S/N
        if p.survey == "lamost" and rng.random() < 0.5:
            cls, subclass = "Unknown", None
    return cls, subclass, float(z), float(z_err), zwarning


def identifiers(config: SynthConfig, p: Plan) -> dict:
    """Survey ids and the file's relative path, unique per (seed, index)."""
    index, seed = p.index, config.seed
    if p.survey == "lamost":
        planid = f"SYN{seed % 10000:04d}_{index // 4000:05d}"
        spid, fiber, lmjd = (index // 250) % 16 + 1, index % 250 + 1, 57000 + index // 4000
        name = f"spec-{lmjd}-{planid}_sp{spid:02d}-{fiber:03d}.fits"
        return {
            "obsid": (1000 + seed % 9000) * 10**9 + index,
            "planid": planid,
            "spid": spid,
            "fiberid": fiber,
            "mjd": lmjd,
            "path": posixpath.join("lamost", planid, name),
        }
    # Plates below 8192 keep specObjID inside int64 (SPALL stores it as K); with the MJD
    # cycling on a different period, (plate, mjd, fiber) stays unique up to 10 M spectra.
    plate = 1000 + (seed % 5) * 1000 + (index // 1000) % 2000
    fiber, mjd = index % 1000 + 1, 55000 + (index // 1000) % 5000
    run2d = "26" if p.layout == "SPECOBJ" else "v5_13_2"
    return {
        "specobjid": int(sdss_specobjid(plate, mjd, fiber, run2d)),
        "plate": plate,
        "fiberid": fiber,
        "mjd": mjd,
        "run2d": run2d,
        "path": posixpath.join("sdss", f"{plate:04d}", f"spec-{plate:04d}-{mjd}-{fiber:04d}.fits"),
    }


def draw_rest(
    config: SynthConfig, source: SpectrumSource, p: Plan, rng: np.random.Generator, resolution
) -> RestFrameSpectrum:
    """The rest-frame spectrum; with ``realism="survey"`` widened as real populations are
    (``synth/variety.py``): varied QSOs, and red (not star-forming) BOSS-range galaxies."""
    if config.realism == "clean" or p.kind not in ("QSO", "GALAXY"):
        return source.draw(p.kind, rng, resolution)
    if p.kind == "GALAXY":
        rest = source.draw("GALAXY", rng, resolution)
        if p.survey == "sdss" and p.z >= 0.25:  # an LRG-range redshift: a passive galaxy
            for _ in range(6):
                if rest.subclass != "STARFORMING":
                    break
                rest = source.draw("GALAXY", rng, resolution)
        return rest
    draw_qso = getattr(source, "draw_qso", None)
    rest = draw_qso(rng, resolution, p.z) if draw_qso else source.draw("QSO", rng, resolution)
    host = source.draw("GALAXY", rng, resolution) if p.z < HOST_MAX_Z else None
    return qso_variety(rest, p.z, rng, host)


@dataclass(frozen=True)
class Simulated:
    """Everything made for one index, before it becomes bytes (tests compare these)."""

    plan: Plan
    rest: RestFrameSpectrum
    observed: ObservedSpectrum
    labels: Labels
    path: str


def simulate(config: SynthConfig, source: SpectrumSource, index: int) -> Simulated:
    """Draw, observe and label spectrum ``index``; deterministic in (config, index)."""
    rng = np.random.default_rng([config.seed, index])
    p = plan(config, index, rng)
    model_name = (
        "lamost" if p.survey == "lamost" else ("sdss_legacy" if p.layout == "SPECOBJ" else "boss")
    )
    model = SURVEY_MODELS[model_name]
    rest = draw_rest(config, source, p, rng, model.resolution)
    if p.survey == "lamost":  # relative flux units
        flux_scale = float(np.exp(rng.uniform(np.log(100), np.log(3000))))
    else:  # 1e-17 erg/s/cm2/A: sky-limited, so brightness tracks S/N
        flux_scale = p.snr_r * float(rng.uniform(0.4, 1.2))
    observed = observe(rest, model, p.z, p.snr_r, flux_scale, rng, config.realism)
    cls, subclass, z, z_err, zwarning = pipeline_labels(p, rest, rng, config.label_noise)
    ids = identifiers(config, p)
    release = (
        "LAMOST DR8 (synthetic)" if p.layout == "lamost_image" else "LAMOST DR10 v2.0 (synthetic)"
    )
    labels = Labels(
        survey_class=cls,
        subclass=subclass,
        z=z,
        z_err=z_err,
        zwarning=zwarning,
        ra=p.ra,
        dec=p.dec,
        obsid=ids.get("obsid"),
        specobjid=ids.get("specobjid"),
        plate=ids.get("plate", 0),
        mjd=ids["mjd"],
        fiberid=ids["fiberid"],
        spid=ids.get("spid", 1),
        planid=ids.get("planid", ""),
        run2d=ids.get("run2d", ""),
        data_release=release,
    )
    path = ids["path"]
    if p.survey == "sdss" and file_variant(config, index)["named_by_id"]:
        path = posixpath.join(posixpath.dirname(path), f"{ids['specobjid']}.fits")
    path += ".gz" if config.gzip else ""
    return Simulated(p, rest, observed, labels, path)


def product_rng(config: SynthConfig, index: int, stream: tuple[int, int]) -> np.random.Generator:
    """The random stream of one 2D product of spectrum ``index`` (never the 1D one)."""
    return np.random.default_rng([config.seed, index, *stream])


def product_path(spectrum_path: str, directory: str, suffix: str) -> str:
    """``lamost/P/spec-x.fits.gz`` -> ``<directory>/lamost/P/spec-x-<suffix>.fits.gz``."""
    head, name = posixpath.split(spectrum_path)
    stem, dot, ext = name.partition(".fits")
    return posixpath.join(directory, head, f"{stem}-{suffix}{dot}{ext}")


def generate_products(config: SynthConfig, sim: Simulated) -> dict[str, tuple[str, bytes]]:
    """The 2D stripes and cutout files the config asks for: manifest column -> (path, bytes)."""
    p, labels, index = sim.plan, sim.labels, sim.plan.index
    specfile = posixpath.basename(sim.path)
    products: dict[str, tuple[str, bytes]] = {}
    if config.with_2d:
        rng = product_rng(config, index, STRIPES_STREAM)
        stripes = simulate_stripes(sim.rest, p.z, p.snr_r, rng, config.fibre_contamination)
        cards = product_cards("STRIPES", "LAMOST", labels, p.survey, sim.observed.snr, specfile)
        path = product_path(sim.path, STRIPES_DIR, "stripes")
        products["stripes_uri"] = (path, write_stripes(stripes, cards, config.gzip))
    if config.with_photometry:
        rng = product_rng(config, index, CUTOUT_STREAM)
        cutout = simulate_cutout(sim.rest, p.z, p.snr_r, rng)
        cards = product_cards("CUTOUT", "SDSS 2.5-M", labels, p.survey, sim.observed.snr, specfile)
        path = product_path(sim.path, CUTOUTS_DIR, "gri")
        products["cutout_uri"] = (path, write_cutout(cutout, cards, p.ra, p.dec, config.gzip))
    return products


#: Seed-sequence tag of the file-layout variant draws (never the flux's stream).
VARIANT_STREAM = (4, 1)
#: SPPIXMASK bits that real files carry on every pixel of good spectra (BADFLAT,
#: MANYBADCOLUMNS, NEARBADPIXEL, LOWFLAT): readers must not mask on them.
INFORMATIONAL_BITS = (1 << 2, 1 << 4, 1 << 16, 1 << 17)


def file_variant(config: SynthConfig, index: int) -> dict[str, dict]:
    """How spectrum ``index``'s file is written, among the variants real archives hold
    (``realism="survey"`` only): LAMOST DR6-DR8 row names with commas; SDSS files with
    an informational and-mask bit on every pixel, written without EXTNAMEs, or named by
    their specObjID (readers never look at file names)."""
    if config.realism == "clean":
        return {"lamost": {}, "sdss": {}, "named_by_id": False}
    rng = np.random.default_rng([config.seed, index, *VARIANT_STREAM])
    commas = bool(rng.random() < 0.5)
    info_bits = int(rng.choice(INFORMATIONAL_BITS)) if rng.random() < 0.2 else 0
    extnames = bool(rng.random() >= 0.1)
    return {
        "lamost": {"commas": commas},
        "sdss": {"info_bits": info_bits, "extnames": extnames},
        "named_by_id": bool(rng.random() < 0.05),  # archives that rename by specObjID
    }


def generate_one(
    config: SynthConfig, source: SpectrumSource, index: int
) -> tuple[list[tuple[str, bytes]], dict]:
    """Files and manifest row of spectrum ``index``.

    Returns ``([(relative path, bytes), ...], row)``: the spectrum file first, then its
    2D products when asked for; the row lacks ``uri`` and holds the products' relative
    paths in ``stripes_uri`` / ``cutout_uri`` (``generate_chunk`` makes all absolute).
    """
    sim = simulate(config, source, index)
    p, rest, observed, labels = sim.plan, sim.rest, sim.observed, sim.labels
    variant = file_variant(config, index)
    if p.survey == "lamost":
        data = write_lamost(observed, labels, p.layout, config.gzip, **variant["lamost"])
        layout = p.layout
    else:
        data = write_sdss(observed, labels, p.layout, config.gzip, **variant["sdss"])
        layout = "sdss_spec"
    true_class, true_subclass = true_labels(rest)
    row = {
        "survey": p.survey,
        "obsid": labels.obsid,
        "specobjid": str(labels.specobjid) if labels.specobjid is not None else None,
        "ra": p.ra,
        "dec": p.dec,
        "class": "UNKNOWN" if labels.survey_class == "Unknown" else labels.survey_class,
        "subclass": labels.subclass,
        "z": labels.z,
        "zwarning": labels.zwarning if p.survey == "sdss" else None,
        "snr_g": observed.snr["g"],
        "snr_r": observed.snr["r"],
        "snr_i": observed.snr["i"],
        "true_class": true_class,
        "true_subclass": true_subclass,
        "true_z": p.z,
        "true_teff": rest.teff,
        "true_logg": rest.logg,
        "true_feh": rest.feh,
        "layout": layout,
        "stripes_uri": None,
        "cutout_uri": None,
    }
    files = [(sim.path, data)]
    for column, (path, product) in generate_products(config, sim).items():
        files.append((path, product))
        row[column] = path
    return files, row


def output_root(out: str) -> tuple[fsspec.AbstractFileSystem, str, str]:
    """(filesystem, root path in it, absolute URI prefix) for an output URI."""
    fs, root = fsspec.core.url_to_fs(out)
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    if protocol in ("file", "local"):
        root = os.path.abspath(root)
        return fs, root, root
    return fs, root.rstrip("/"), f"{protocol}://{root.rstrip('/')}"


def generate_chunk(config: SynthConfig, start: int, stop: int) -> pa.Table:
    """Write spectra ``start..stop-1`` to storage; return their manifest rows."""
    source = make_source(config.templates)
    fs, root, prefix = output_root(config.out)
    made_dirs: set[str] = set()
    rows = []
    for index in range(start, stop):
        files, row = generate_one(config, source, index)
        for path, data in files:
            directory = posixpath.dirname(posixpath.join(root, path))
            if directory not in made_dirs:
                fs.makedirs(directory, exist_ok=True)
                made_dirs.add(directory)
            fs.pipe_file(posixpath.join(root, path), data)
        row["uri"] = posixpath.join(prefix, files[0][0])
        for column in ("stripes_uri", "cutout_uri"):
            if row[column] is not None:
                row[column] = posixpath.join(prefix, row[column])
        rows.append(row)
    return manifest_table(rows)


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]


class ManifestWriter:
    """Streams manifest chunks, in order, into ``<out>/manifest.parquet``."""

    def __init__(self, out: str):
        fs, root, prefix = output_root(out)
        fs.makedirs(root, exist_ok=True)
        self.uri = posixpath.join(prefix, MANIFEST_NAME)
        self._handle = fs.open(posixpath.join(root, MANIFEST_NAME), "wb")
        self._writer = pq.ParquetWriter(self._handle, MANIFEST_SCHEMA)
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()
        self._handle.close()


class Progress:
    """One line per update on stderr: done / total, rate, ETA."""

    def __init__(self, total: int, label: str = "spectra", stream=None):
        self.total, self.label, self._stream = total, label, stream
        self.start = time.perf_counter()

    def update(self, done: int) -> None:
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        print(
            f"  {done}/{self.total} {self.label} ({rate:.0f}/s, ETA {_duration(eta)})",
            file=self._stream or sys.stderr,
            flush=True,
        )


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def write_release(
    config: SynthConfig,
    chunk_size: int = 500,
    run_chunks: Callable[[Iterable[tuple[int, int]]], Iterator[pa.Table]] | None = None,
    progress: bool = True,
) -> str:
    """Generate the whole release; return the manifest URI.

    ``run_chunks`` maps chunk bounds to manifest tables in order (default: in this
    process, one after another; ``jobs/make_release.py`` passes Ray tasks).
    """
    bounds = chunk_bounds(config.n, chunk_size)
    if run_chunks is None:

        def run_chunks(chunks):
            return (generate_chunk(config, a, b) for a, b in chunks)

    writer = ManifestWriter(config.out)
    meter = Progress(config.n) if progress else None
    try:
        for table in run_chunks(bounds):
            writer.write(table)
            if meter:
                meter.update(writer.rows)
    finally:
        writer.close()
    if writer.rows != config.n:
        raise RuntimeError(f"manifest has {writer.rows} rows, expected {config.n}")
    return writer.uri
