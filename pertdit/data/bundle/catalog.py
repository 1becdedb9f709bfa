"""The files of the L1000 collection (`../shared/data`): what each is, where it came from, its licence.

Every expression profile is LINCS L1000 data measured by the Connectivity Map team of the Broad Institute
for the NIH LINCS program (GEO GSE92742 / GSE70138; Subramanian et al., Cell 171:1437, 2017); the
repositories below only redistributed them. `shared/data/README.md` documents each file's quirks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

ATTRIBUTION = (
    "LINCS L1000 data, measured by the Connectivity Map team of the Broad Institute for the NIH LINCS "
    "program (public releases GEO GSE92742 and GSE70138; Subramanian et al., Cell 171:1437, 2017), public "
    "under the LINCS data release policy. Credit LINCS L1000 / Broad Institute and the repository each "
    "file came from."
)


@dataclass(frozen=True)
class SourceFile:
    """One file of the collection and its provenance."""

    name: str
    file: str
    kind: str
    repository: str
    path: str
    commit: str
    licence: str
    licence_file: str
    shipped: bool = True
    caveat: str = ""
    assumptions: tuple[str, ...] = field(default_factory=tuple)

    def provenance(self) -> dict:
        """Plain dict (for `uns` and the provenance file)."""
        record = asdict(self)
        record["assumptions"] = list(self.assumptions)
        return record


CMAPM = "cmap/cmapM"
CMAPM_HEAD = "8f0e7bc4c38efbdf3f96f5ac72ee26792907a99c"
TRANSIGEN = "myzhengSIMM/TranSiGen"
TRANSIGEN_HEAD = "e7582e7794f13d4dfddfb15e95e3ba7cd24bc07a"
BSD_CMAPM = ("BSD-3-Clause", "LICENSE-cmapM.txt")
LJP009_CAVEAT = (
    "LJP009 A375 (cmap/l1ktools @ 363cf2ad): when this file was in the repository its README said 'This "
    "software is restricted to research use only within academic, not-for-profit institutions'; the BSD "
    "licence was added after the file had been removed (LICENSE-l1ktools.txt). Treat it as research-use "
    "data: it is not in the shipped copy, and a copy built with it must not be redistributed outside "
    "research use."
)

#: Expression files, in the order they are stacked in the bundle.
SOURCES: tuple[SourceFile, ...] = (
    SourceFile("LJP005_A375_24H", "l1000_LJP005_A375_24H_level3_n377x978.gct", "cmap_gct", "cmap/cmapPy",
               "cmapPy/pandasGEXpress/tests/functional_tests/test_l1000.gct",
               "d1652c3223e49e68e3a71634909342b4a6dbf361", "BSD-3-Clause", "LICENSE-cmapPy.txt"),
    SourceFile("LJP005_MCF7_24H", "l1000_LJP005_MCF7_24H_level3_n10x978.gct", "cmap_gct", CMAPM,
               "tests/assets/gctv13_02.gct", CMAPM_HEAD, *BSD_CMAPM),
    SourceFile("LJP006_PC3_24H", "l1000_LJP006_PC3_24H_level3_n10x978.gct", "cmap_gct", CMAPM,
               "qc_modules/dactyloscopy/tests/assets/LJP006_PC3_24H_X3_B19_QNORM_n10x978.gct",
               "3ea51219358f235dbe2df7e07f5d8ce170848926", *BSD_CMAPM),
    SourceFile("LJP009_A375_24H", "l1000_LJP009_A375_24H_level3_n371x978.gct", "cmap_gct", "cmap/l1ktools",
               "matlab/data_pipeline/results/LJP009_A375_24H_X1_B20/LJP009_A375_24H_X1_B20_QNORM_n371x978.gct",
               "363cf2ad7082341c613dd3cda2af19060948996d",
               "research use only at the time (unsettled; see LICENSE-l1ktools.txt)", "LICENSE-l1ktools.txt",
               shipped=False, caveat=LJP009_CAVEAT),
    SourceFile("CPC006_A375_6H", "l1000_CPC006_A375_6H_level3_n371x978.gct", "cmap_gct_old", CMAPM,
               "tests/assets/gctv13_01.gct", CMAPM_HEAD, *BSD_CMAPM),
    SourceFile("CPC006_HT115_6H", "l1000_CPC006_HT115_6H_level3_n681x978_prnet.h5ad", "prnet_h5ad",
               "Perturbation-Response-Prediction/PRnet", "dataset/demo.h5ad",
               "f19174bde3ed2633f54c7831799cc38c4ffc7a0d", "Apache-2.0", "LICENSE-PRnet.txt",
               assumptions=("paired_control_index was drawn among all DMSO wells of the cell line, not from "
                            "the same plate (49% same plate): re-paired by plate unless kept on purpose",)),
    SourceFile("LJP001-002_SKBR3", "l1000_LJP001-002_SKBR3_level3_n580x978.gct", "cmap_gct", "bhklab/CMapBox",
               "data/psetSub.rda", "32ab90b817944622c9a2e620ad3a8d66c61aa0c4",
               "Artistic-2.0 (declared in DESCRIPTION)", "LICENSE-CMapBox.txt",
               assumptions=("H2O wells come from the control-only plates LJP003/LJP004, not from the plates "
                            "of the treated wells",)),
    SourceFile("transigen_LINCS2020_pairs", "l1000_transigen_LINCS2020_pairs_n200x978.h5ad", "prnet_h5ad",
               TRANSIGEN, "data/LINCS2020/data_example/processed_data.h5", TRANSIGEN_HEAD, "MIT",
               "LICENSE-TranSiGen.txt",
               assumptions=("dose 10 uM and time 24 h are not in the source file: taken from the TranSiGen "
                            "paper's description of its data",
                            "control rows are TranSiGen's x1 profiles, labelled DMSO / ctl_vehicle by "
                            "convention",
                            "consensus profiles (not single wells); no plate")),
)

#: Tables and basal profiles the build reads besides the expression files.
SUPPORT: tuple[SourceFile, ...] = (
    SourceFile("landmark_genes", "l1000_landmark_genes.tsv", "gene_table", TRANSIGEN,
               "data/LINCS2020/landmark_geneinfo.csv (+ the row metadata of the GCT files + PRnet's gene "
               "names)", TRANSIGEN_HEAD, "MIT (TranSiGen) / as its sources", "LICENSE-TranSiGen.txt"),
    SourceFile("compounds", "l1000_compounds_all.tsv", "compound_table", "girke-lab/signatureSearch",
               "data/lincs_pert_info2.rda (371 rows); dhimmel/lincs data/pertinfo/pertinfo.tsv.gz @ "
               "726793b5ce36576f6f17a0e015a4196113da270c (52 rows); huxiaoti/firebird_project "
               "data/raw_data/DeepCE_drugs.csv (the 58 rows of l1000_LJP005_compounds.tsv)",
               "b64347cb80e1f2856033c254203310e3d1acf67c",
               "Artistic-2.0 (signatureSearch); CC0 / CC BY 4.0 (dhimmel/lincs); none stated (firebird_project)",
               "LICENSE-signatureSearch.txt"),
    SourceFile("basal", "l1000_basal_165cells_level3_n165x978.gct", "cmap_gct", TRANSIGEN,
               "data/LINCS2020/modz_x1.pickle", TRANSIGEN_HEAD, "MIT", "LICENSE-TranSiGen.txt"),
)
#: Licence texts copied next to the bundle (every file a source or table above names, plus dhimmel/lincs).
LICENCE_FILES = ("LICENSE-cmapPy.txt", "LICENSE-cmapM.txt", "LICENSE-PRnet.txt", "LICENSE-CMapBox.txt",
                 "LICENSE-TranSiGen.txt", "LICENSE-signatureSearch.txt", "LICENSE-dhimmel-lincs.txt")
RESTRICTED_LICENCE_FILES = {"LJP009_A375_24H": "LICENSE-l1ktools.txt"}


def source_by_name(name: str) -> SourceFile:
    """The catalog entry called `name`; KeyError listing the names otherwise."""
    for source in SOURCES:
        if source.name == name:
            return source
    raise KeyError(f"unknown source {name!r}; sources: {[s.name for s in SOURCES]}")


def source_name_of_file(file_name: str) -> str | None:
    """The catalog name of a collection file (by its file name), or None."""
    return next((s.name for s in SOURCES if s.file == file_name), None)


def default_sources() -> list[str]:
    """Names of the sources in the shipped copy (everything but the research-use LJP009 plate)."""
    return [s.name for s in SOURCES if s.shipped]
