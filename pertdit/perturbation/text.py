"""Text representation: SMILES -> description, dose -> prompt, each embedded by a BERT-family encoder; the
token embeddings are concatenated along the sequence (or mean-pooled)."""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pertdit.errors import RepresentationError
from pertdit.perturbation.base import (
    PerturbationFeatures,
    PerturbationRepresentation,
    check_doses,
    check_times,
    parse_smiles,
    resolve_pretrained,
    stable_hash,
    weights_fingerprint,
)
from pertdit.perturbation.description import DEFAULT_CAPTIONER_ID, RDKitDescription, Seq2SeqCaptioner

log = logging.getLogger(__name__)

DESCRIBERS = ("auto", "rdkit", "captioner")
_FALLBACK_LOGGED: set[str] = set()


class TextRepresentation(PerturbationRepresentation):
    """(SMILES, dose) -> tokens (N, L, D): [description tokens | dose-prompt tokens | padding], mask True on
    the real tokens; `pooled=True` gives their masked mean (N, 1, D).

    The description comes from a seq2seq captioner (`describer="captioner"`: an error when its weights
    cannot be had), from RDKit (`"rdkit"`), or from the captioner when its weights can be had and RDKit
    otherwise (`"auto"`; the substitution is logged once and kept in `substitution` / `provenance()`).
    Description and prompt are embedded separately (each with its own [CLS] ... [SEP]) by the encoder's last
    hidden state. `condition_on_time=True` (beyond the paper) adds the time to the prompt (`time_template`,
    e.g. "The dosage is 0.37 micromoles. The profile was measured 24 hours after treatment."): conditions
    are then (SMILES, dose, time), and the cache stores one prompt per (dose, time). Weights come from a
    local folder or the Hugging Face cache, downloaded on first use unless offline (`local_files_only:
    true`, or HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set).
    """

    def __init__(
        self,
        describer: str = "auto",
        captioner: Mapping | None = None,
        rdkit_description: Mapping | None = None,
        encoder_id: str = "michiyasunaga/BioLinkBERT-large",
        encoder_local_dir: str | None = None,
        dose_prompt: bool = True,
        dose_template: str = "The dosage is {dose} micromoles.",
        dose_decimals: int = 4,
        condition_on_time: bool = False,
        time_template: str = "The profile was measured {time} hours after treatment.",
        time_decimals: int = 4,
        pooled: bool = False,
        max_tokens: int = 512,
        batch_size: int = 16,
        device: str = "cpu",
        cache_dir: str | None = None,
        local_files_only: bool | None = None,
    ) -> None:
        if describer not in DESCRIBERS:
            raise RepresentationError(f"describer={describer!r} is not one of {DESCRIBERS}")
        self.encoder_id = encoder_id
        self.local_files_only = local_files_only
        self.encoder_path = resolve_pretrained(
            encoder_id, encoder_local_dir, "text encoder", "encoder_local_dir", local_files_only
        )
        self.dose_prompt = bool(dose_prompt)
        self.dose_template = dose_template
        self.dose_decimals = int(dose_decimals)
        self.condition_on_time = bool(condition_on_time)
        self.time_template = time_template
        self.time_decimals = int(time_decimals)
        self.pooled = bool(pooled)
        self.max_tokens = int(max_tokens)
        self.batch_size = int(batch_size)
        self.device = device
        self.cache_dir = cache_dir
        self.substitution: dict[str, str] | None = None
        self.describer = self._make_describer(describer, dict(captioner or {}), dict(rdkit_description or {}))
        self.name = "text" + ("_pooled" if self.pooled else "") + ("" if self.dose_prompt else "_wo_dosage")
        if self.condition_on_time:
            self.name += "_time"
        self._dim: int | None = None
        self._tokenizer = None
        self._model = None
        self._descriptions: dict[str, str] = {}
        self._prompt_embeddings: dict[str, np.ndarray] = {}

    def _make_describer(self, choice: str, captioner: dict, rdkit_options: dict
                        ) -> Seq2SeqCaptioner | RDKitDescription:
        if choice == "rdkit":
            return RDKitDescription(**rdkit_options)
        captioner.setdefault("local_files_only", self.local_files_only)
        try:
            return Seq2SeqCaptioner(**captioner)
        except RepresentationError as err:
            if choice == "captioner":
                raise
            model_id = captioner.get("model_id", DEFAULT_CAPTIONER_ID)
            self.substitution = {"requested": f"captions by {model_id}", "used": "RDKit-derived descriptions",
                                 "reason": str(err)}
            if model_id not in _FALLBACK_LOGGED:
                _FALLBACK_LOGGED.add(model_id)
                log.warning("describer=auto: using RDKit-derived descriptions instead of captions by %s (recorded "
                            "in the dataset's uns['pertdit']['representation']). %s", model_id, err)
            return RDKitDescription(**rdkit_options)

    @property
    def describer_name(self) -> str:
        return "captioner" if isinstance(self.describer, Seq2SeqCaptioner) else "rdkit"

    @property
    def dim(self) -> int:
        if self._dim is None:
            config = json.loads((self.encoder_path / "config.json").read_text())
            self._dim = int(config.get("hidden_size") or config["d_model"])
        return self._dim

    def cache_key(self) -> str:
        options = {
            "layout": "description+prompt tokens, last hidden state, v1",
            "describer": self.describer.cache_key(),
            "encoder_id": self.encoder_id,
            "encoder_weights": weights_fingerprint(self.encoder_path),
            "dose_prompt": self.dose_prompt,
            "dose_template": self.dose_template if self.dose_prompt else None,
            "dose_decimals": self.dose_decimals if self.dose_prompt else None,
            "pooled": self.pooled,
            "max_tokens": self.max_tokens,
        }
        if self.condition_on_time:  # off: the key of a representation without the option, unchanged
            options.update(time_template=self.time_template, time_decimals=self.time_decimals)
        return f"{self.name}-" + stable_hash(options)

    # -- texts ---------------------------------------------------------------------------------------
    @property
    def has_prompt(self) -> bool:
        """Whether conditions get prompt tokens: the dose sentence and/or (`condition_on_time`) the time's."""
        return self.dose_prompt or self.condition_on_time

    def prompt(self, dose: float, time: float | None = None) -> str:
        """The prompt of a condition: the dose sentence, e.g. 'The dosage is 0.37 micromoles.' (µM, rounded
        as the authors do; left out when `dose_prompt` is off), then with `condition_on_time` the time
        sentence, e.g. 'The profile was measured 24 hours after treatment.' (`time` in hours, needed then)."""
        sentences = []
        if self.dose_prompt:
            sentences.append(self.dose_template.format(dose=round(float(dose), self.dose_decimals)))
        if self.condition_on_time:
            if time is None:
                raise RepresentationError(f"{self!r} conditions on time: the prompt needs the time (hours)")
            hours = round(float(check_times([time])[0]), self.time_decimals)
            sentences.append(self.time_template.format(time=f"{hours:g}"))
        return " ".join(sentences)

    def describe(self, smiles: list[str]) -> list[str]:
        """One description per SMILES; each distinct SMILES is described once per process (and captions are
        kept in `cache_dir/descriptions/` across runs)."""
        missing = sorted({s for s in smiles if s not in self._descriptions})
        for s in missing:
            parse_smiles(s)
        if missing:
            stored = self._load_descriptions()
            todo = [s for s in missing if s not in stored]
            if todo:
                stored.update(zip(todo, self.describer.caption(todo)))
                self._save_descriptions(stored)
            self._descriptions.update({s: stored[s] for s in missing})
        return [self._descriptions[s] for s in smiles]

    def _descriptions_file(self) -> Path | None:
        if self.cache_dir is None or self.describer_name == "rdkit":  # RDKit descriptions cost nothing
            return None
        return Path(self.cache_dir) / "descriptions" / f"{self.describer.cache_key()}.json"

    def _load_descriptions(self) -> dict[str, str]:
        path = self._descriptions_file()
        if path is None or not path.exists():
            return {}
        try:
            return dict(json.loads(path.read_text()))
        except (ValueError, TypeError):
            log.warning("ignoring unreadable description cache %s; captioning again", path)
            return {}

    def _save_descriptions(self, descriptions: dict[str, str]) -> None:
        path = self._descriptions_file()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(descriptions, sort_keys=True, indent=0))
        os.replace(tmp, path)

    def texts(self, smiles: list[str], doses: list[float],
              times: list[float] | None = None) -> list[tuple[str, str | None]]:
        """(description, prompt or None) of each condition, as the encoder reads them (`times` in hours,
        read only with `condition_on_time`)."""
        check_doses(doses, smiles)
        descriptions = self.describe(list(smiles))
        return list(zip(descriptions, self._prompt_texts(smiles, doses, times)))

    def _prompt_texts(self, smiles: list[str], doses: list[float],
                      times: list[float] | None) -> list[str | None]:
        """The prompt of each condition (None for every one without `has_prompt`)."""
        if not self.has_prompt:
            return [None] * len(smiles)
        doses = check_doses(doses, smiles)
        hours = self.condition_times(smiles, times)
        if hours is None:
            return [self.prompt(d) for d in doses]
        if len(hours) != len(smiles):
            raise RepresentationError(f"{len(smiles)} SMILES but {len(hours)} times")
        return [self.prompt(d, t) for d, t in zip(doses, hours)]

    def provenance(self) -> dict[str, str]:
        """Class, name and cache key, the encoder (its id and the folder its weights were read from: a local
        folder such as a small-scale run's tiny random BERT replaces the id's weights), the describer that ran
        and any substitution made."""
        out = {**super().provenance(), "encoder_id": self.encoder_id, "encoder_path": str(self.encoder_path),
               "describer": self.describer_name}
        if self.condition_on_time:
            out["condition_on_time"] = "true"
        if isinstance(self.describer, Seq2SeqCaptioner):
            out["captioner_id"] = self.describer.model_id
        if self.substitution:
            out.update({f"substitution_{key}": value for key, value in self.substitution.items()})
        return out

    # -- token parts: the embedding cache stores each description and each prompt once ------------------------
    def token_parts(self) -> tuple[str, ...]:
        if self.pooled:
            return ()
        return ("description", "prompt") if self.has_prompt else ("description",)

    def part_keys(self, part: str, smiles: list[str], doses: list[float],
                  times: list[float] | None = None) -> list[str]:
        """description: the SMILES; prompt: the prompt text (doses, and with `condition_on_time` (dose,
        time) pairs, that round alike share it)."""
        if part == "description":
            return [str(s) for s in smiles]
        if part == "prompt":
            return self._prompt_texts(smiles, doses, times)
        raise RepresentationError(f"{self!r} has no token part {part!r} (parts: {self.token_parts()})")

    def _part_texts(self, part: str, keys: list[str]) -> list[str]:
        if part == "description":
            return self.describe(list(keys))
        if part == "prompt":
            return list(keys)
        raise RepresentationError(f"{self!r} has no token part {part!r} (parts: {self.token_parts()})")

    def part_token_counts(self, part: str, keys: list[str]) -> np.ndarray:
        return self._token_count(self._part_texts(part, keys))

    def embed_part(self, part: str, keys: list[str]) -> list[np.ndarray]:
        return self.embed_texts(self._part_texts(part, keys))

    # -- encoder -------------------------------------------------------------------------------------
    def _load_tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.encoder_path, local_files_only=True)
            self._tokenizer.padding_side = "right"
        return self._tokenizer

    def _load_model(self):
        if self._model is None:
            from transformers import AutoModel

            self._model = AutoModel.from_pretrained(self.encoder_path, local_files_only=True)
            self._model.eval().to(self.device)
        return self._model

    def _token_count(self, texts: list[str]) -> np.ndarray:
        ids = self._load_tokenizer()(texts, truncation=True, max_length=self.max_tokens)["input_ids"]
        return np.array([len(i) for i in ids], dtype=np.int64)

    def token_counts(self, smiles: list[str], doses: list[float],
                     times: list[float] | None = None) -> np.ndarray:
        if self.pooled:
            return np.ones(len(smiles), dtype=np.int64)
        pairs = self.texts(smiles, doses, times)
        counts = self._token_count([d for d, _ in pairs])
        if self.has_prompt:
            counts += self._token_count([p for _, p in pairs])
        return counts

    def embed_texts(self, texts: list[str]) -> list[np.ndarray]:
        """Last hidden state of each text, (tokens_i, D) float32 without padding; batched by length."""
        import torch

        tokenizer, model = self._load_tokenizer(), self._load_model()
        order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), texts[i]))
        out: list[np.ndarray | None] = [None] * len(texts)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            inputs = tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True, max_length=self.max_tokens,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                hidden = model(**inputs).last_hidden_state.float().cpu().numpy()
            lengths = inputs["attention_mask"].sum(dim=1).cpu().numpy()
            for k, i in enumerate(rows):
                out[i] = hidden[k, : lengths[k]].copy()
        return out

    def _prompts(self, prompts: list[str]) -> list[np.ndarray]:
        todo = sorted({p for p in prompts if p not in self._prompt_embeddings})
        self._prompt_embeddings.update(zip(todo, self.embed_texts(todo)))
        return [self._prompt_embeddings[p] for p in prompts]

    def encode(self, smiles: list[str], doses: list[float],
               times: list[float] | None = None) -> PerturbationFeatures:
        """tokens (N, L, D) float32 with L the longest description + prompt of this call (1 when pooled);
        `times` (N,) hours, read only with `condition_on_time`."""
        if len(smiles) != len(doses):
            raise RepresentationError(f"{len(smiles)} SMILES but {len(doses)} doses")
        pairs = self.texts(smiles, doses, times)
        unique = sorted({d for d, _ in pairs})
        described = dict(zip(unique, self.embed_texts(unique)))
        pieces = [[described[d]] for d, _ in pairs]
        if self.has_prompt:
            for piece, prompt in zip(pieces, self._prompts([p for _, p in pairs])):
                piece.append(prompt)
        lengths = [sum(len(p) for p in piece) for piece in pieces]
        length = 1 if self.pooled else max(lengths, default=1)
        tokens = np.zeros((len(pieces), length, self.dim), dtype=np.float32)
        mask = np.zeros((len(pieces), length), dtype=bool)
        for i, piece in enumerate(pieces):
            sequence = np.concatenate(piece, axis=0)
            if self.pooled:
                tokens[i, 0], mask[i, 0] = sequence.mean(axis=0), True
            else:
                tokens[i, : len(sequence)], mask[i, : len(sequence)] = sequence, True
        return PerturbationFeatures(tokens=tokens, mask=mask)
