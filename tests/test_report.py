"""Dataset card, HTML report and validator: what people and the downstream loader read."""

import json
import re
from html.parser import HTMLParser

import pytest
import yaml

from socratic_sdg import export
from socratic_sdg.export import report, summary
from socratic_sdg.cli import main as cli_main
from socratic_sdg.records import read_jsonl, write_json, write_jsonl
from socratic_sdg.export.validate import check_row, validate
from socratic_sdg.testing import report_run
from socratic_sdg.testing.generation import conversation


def _accepted(n_docs: int, per_doc: int) -> list[dict]:
    return [conversation(f"d{d}-c{c}", f"How do I integrate x^{c} from document {d}? Just tell me.",
                         "What rule do you know for integrating a power of x?", chunk_id=f"d{d}-c{c}", doc_id=f"doc{d}",
                         source=f"doc{d}.pdf", reference_answer="x^(c+1)/(c+1)", quality={"green_score": 1})
            for d in range(n_docs) for c in range(per_doc)]


@pytest.fixture
def run_folders(tmp_path):
    """The stage folders of a finished run, as the pipeline leaves them."""
    folders = {name: tmp_path / name for name in ("converted", "chunks", "conversations", "filtered", "dataset")}
    for folder in folders.values():
        folder.mkdir()
    write_json(folders["converted"] / "convert_metrics.json", {"documents": 3, "failed": 1, "pages": 40, "seconds": 4.0})
    write_json(folders["chunks"] / "chunk_metrics.json", {"chunks": 30, "dropped": 2, "tokens": 9000, "seconds": 1.0})
    write_json(
        folders["conversations"] / "generate_metrics.json",
        {"output_rows": 40, "failed_rows": 2, "execution_time_seconds": 60.0, "model": "granite", "flow_id": "socratic-single-turn"},
    )
    write_json(folders["filtered"] / "filter_metrics.json", {"accepted": 24, "rejected": 16, "reasons": {"states_answer": 10, "no_guiding_question": 6}})
    accepted = _accepted(3, 8)
    leak = "Just integrate term by term: the answer is x^3/3. Does that make sense?"
    reason = {"code": "states_answer", "layer": "rules", "detail": 'message 2 (assistant): "the answer is x^3/3" states the answer'}
    rejected = [conversation(f"r{i}", "How do I integrate x^2? Just tell me.", leak, chunk_id=f"d3-c{i % 2}", source="doc3.pdf", drop_reasons=[reason])
                for i in range(16)]
    write_jsonl(folders["filtered"] / "accepted.jsonl", accepted)
    write_jsonl(folders["filtered"] / "rejected.jsonl", rejected)
    write_jsonl(folders["conversations"] / "conversations.jsonl", accepted + rejected)
    chunks = [{"chunk_id": f"d{d}-c{c}", "source": f"doc{d}.pdf", "headings": [f"Chapter {d}", f"Section {c}"], "text": "..."}
              for d in range(4) for c in range(8)]
    write_jsonl(folders["chunks"] / "chunks.jsonl", chunks)
    export.run(folders["filtered"] / "accepted.jsonl", folders["dataset"])
    collected = summary.collect(*(folders[k] for k in ("converted", "chunks", "conversations", "filtered", "dataset")))
    paths = report.write_reports(collected, folders["dataset"], license_id="cc-by-4.0")
    return folders, collected, paths


def test_summary_counts_and_retention(run_folders):
    _, collected, _ = run_folders
    assert (collected["documents"], collected["chunks"], collected["generated"], collected["accepted"]) == (3, 30, 40, 24)
    assert collected["retention"] == 0.6
    assert collected["train"] + collected["validation"] == 24
    assert list(collected["rejected_by_reason"]) == ["states_answer", "no_guiding_question"]
    metrics = summary.numeric_metrics(collected)
    assert metrics["rejected_states_answer"] == 10 and metrics["seconds_generate"] == 60.0


def test_dataset_card_front_matter_parses_and_names_the_files(run_folders):
    folders, collected, paths = run_folders
    text = paths["card"].read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["license"] == "cc-by-4.0" and front["language"] == ["en"] and front["size_categories"] == ["n<1K"]
    files = {f["split"]: f["path"] for f in front["configs"][0]["data_files"]}
    assert files == {"train": "train.jsonl", "validation": "validation.jsonl"}
    assert all((folders["dataset"] / path).is_file() for path in files.values())
    assert "granite" in text and "socratic-single-turn" in text and "`states_answer` 10" in text
    assert "doc0.pdf" in text and '"role": "assistant"' in text


class _Figures(HTMLParser):
    def __init__(self):
        super().__init__()
        self.figures: dict[str, list[tuple[str, float]]] = {}
        self.keys: dict[str, list[str | None]] = {}
        self.data = None
        self._figure = None
        self._in_data = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure":
            self._figure = attrs["id"]
            self.figures[self._figure] = []
        elif tag == "rect" and "bar" in attrs.get("class", ""):
            self.figures[self._figure].append((attrs["data-label"], float(attrs["data-value"])))
            self.keys.setdefault(self._figure, []).append(attrs.get("data-key"))
        elif tag == "script" and attrs.get("id") == "report-data":
            self._in_data = True

    def handle_data(self, data):
        if self._in_data:
            self.data = json.loads(data)
            self._in_data = False


def test_html_report_has_the_plots_with_the_run_figures(run_folders):
    _, collected, paths = run_folders
    parser = _Figures()
    parser.feed(paths["html"].read_text())
    figures = parser.figures
    assert set(figures) == {"funnel", "drop-reasons", "acceptance-by-source", "coverage-map", "student-lengths", "tutor-lengths",
                            "records-per-source", "stage-seconds"}
    # one unit (conversations) from the rows attempted to the records exported
    assert dict(figures["funnel"]) == {"Rows attempted": 42, "Conversations generated": 40, "Passed the filter": 24, "Exported": 24}
    # drop reasons in words, the code kept as the bar's key
    assert dict(figures["drop-reasons"]) == {"States answer": 10, "No guiding question": 6}
    assert parser.keys["drop-reasons"] == ["states_answer", "no_guiding_question"]
    assert dict(figures["acceptance-by-source"]) == {"doc0.pdf": 100, "doc1.pdf": 100, "doc2.pdf": 100, "doc3.pdf": 0}
    assert dict(figures["records-per-source"]) == {"doc0.pdf": 8, "doc1.pdf": 8, "doc2.pdf": 8}
    assert sum(v for _, v in figures["tutor-lengths"]) == 24  # one tutor turn per record
    assert parser.data["funnel"]["Passed the filter"] == 24 and parser.data["drop_reasons"] == {"states_answer": 10, "no_guiding_question": 6}
    assert "judge_scores" not in parser.data and 'id="judge' not in paths["html"].read_text()  # no judge ran
    assert paths["markdown"].read_text().startswith("# Socratic SDG run")
    page = paths["html"].read_text()
    # a rejected example per reason, the quoted passage marked; the sections that gave nothing
    assert "<mark>the answer is x^3/3</mark>" in page and "why: message 2 (assistant)" in page
    assert "24 of the 26 sections generated from gave at least one accepted conversation" in page
    assert "2 gave none" in page and "6 more were not generated from" in page


def _section_rows(page: str) -> list[tuple[str, list[str]]]:
    """The coverage table's rows: (class, cell texts)."""
    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self._in = [], False

        def handle_starttag(self, tag, attrs):
            if tag == "table" and dict(attrs).get("class") == "sections":
                self._in = True
            elif tag == "tr" and self._in:
                self.rows.append((dict(attrs).get("class"), []))
            elif tag == "td" and self._in:
                self.rows[-1][1].append("")

        def handle_endtag(self, tag):
            self._in = self._in and tag != "table"

        def handle_data(self, data):
            if self._in and self.rows and self.rows[-1][1]:
                self.rows[-1][1][-1] += data

    parser = Rows()
    parser.feed(page)
    return [row for row in parser.rows if row[1]]


def test_coverage_map_lists_every_section_in_the_course_order(run_folders):
    _, collected, paths = run_folders
    sections = collected["acceptance_by_section"]
    assert (collected["sections"], len(sections)) == (32, 32)
    assert [s["section"] for s in sections[:3]] == ["Chapter 0 > Section 0", "Chapter 0 > Section 1", "Chapter 0 > Section 2"]
    assert sections[0] == {"source": "doc0.pdf", "section": "Chapter 0 > Section 0", "generated": 1, "accepted": 1}
    assert sections[24:27] == [{"source": "doc3.pdf", "section": f"Chapter 3 > Section {c}", "generated": g, "accepted": 0}
                               for c, g in ((0, 8), (1, 8), (2, 0))]
    rows = _section_rows(paths["html"].read_text())
    assert len(rows) == 32
    # the sections that gave nothing are highlighted; those never generated from are told apart
    assert [cells[:2] for kind, cells in rows if kind == "none"] == [["doc3.pdf", "Chapter 3 > Section 0"], ["doc3.pdf", "Chapter 3 > Section 1"]]
    assert sum(kind == "idle" for kind, _ in rows) == 6 and sum(kind == "some" for kind, _ in rows) == 24
    assert rows[24][1][2:] == ["8", "0", "none accepted"]


def _persona(level: str, kind: str) -> dict:
    return {"student_level": level, "request_type": kind, "request_instruction": f"asks: {kind}"}


def test_acceptance_per_diversity_value(tmp_path):
    levels, kinds = ["first-year", "returning adult, thinks x < 0 & y > 0 means xy > 0"], ["just_tell_me", "wrong_attempt"]
    records = [conversation(f"r{i}", "How do I solve 2x = 4?", "What could you do to both sides?", chunk_id="c0",
                            diversity=_persona(levels[i % 2], kinds[i // 2 % 2])) for i in range(8)]
    write_jsonl(tmp_path / "conversations.jsonl", records)
    write_jsonl(tmp_path / "accepted.jsonl", [r for r in records if r["metadata"]["diversity"]["request_type"] == "wrong_attempt" or r["id"] == "r0"])
    collected = summary.collect(tmp_path, tmp_path, tmp_path, tmp_path, tmp_path)
    axes = collected["acceptance_by_diversity"]
    # request_instruction varies with request_type (one axis of mappings): no table of its own
    assert list(axes) == ["student_level", "request_type"]
    assert axes["request_type"] == {"wrong_attempt": {"generated": 4, "accepted": 4}, "just_tell_me": {"generated": 4, "accepted": 1}}
    assert axes["student_level"] == {"first-year": {"generated": 4, "accepted": 3}, levels[1]: {"generated": 4, "accepted": 2}}
    page = report.html_report(collected, {"student_turn_tokens": {}, "tutor_turn_tokens": {}, "records_per_source": {}, "examples": []})
    parser = _Figures()
    parser.feed(page)
    assert dict(parser.figures["diversity-request-type"]) == {"wrong_attempt": 100, "just_tell_me": 25}
    assert parser.data["acceptance_by_diversity"]["student_level"] == axes["student_level"]  # the embedded JSON keeps <, > and &
    assert "Just tell me</span> <code>just_tell_me</code>" in page and "diversity-request-instruction" not in page


def test_few_conversations_keep_every_diversity_column(tmp_path):
    """Two conversations with all-different values are one-to-one in every column by chance."""
    records = [conversation(f"r{i}", "Why?", "What do you think?", chunk_id="c0", diversity=_persona(f"level {i}", f"kind_{i}"))
               for i in range(2)]
    write_jsonl(tmp_path / "conversations.jsonl", records)
    collected = summary.collect(tmp_path, tmp_path, tmp_path, tmp_path, tmp_path)
    assert list(collected["acceptance_by_diversity"]) == ["student_level", "request_type", "request_instruction"]


def test_judge_score_histograms(tmp_path):
    folders = report_run.write_run(tmp_path)
    collected = summary.read(folders["dataset"])
    accepted = list(read_jsonl(folders["filtered"] / "accepted.jsonl"))
    rejected = list(read_jsonl(folders["filtered"] / "rejected.jsonl"))
    page = (folders["dataset"] / "report.html").read_text()
    parser = _Figures()
    parser.feed(page)
    for dimension in ("mistake_identification", "guidance", "actionability", "grounding", "tone"):
        scores = [r["metadata"]["quality"]["judge"][dimension] for r in accepted]
        expected = {str(score): scores.count(score) for score in range(1, 6)}
        low = [reason for r in rejected for reason in r["metadata"]["drop_reasons"] if reason["code"] == f"judge_low_{dimension}"]
        assert collected["judge_scores"][dimension]["accepted"] == expected
        assert sum(collected["judge_scores"][dimension]["rejected"].values()) == len(low)
        bars = parser.figures[f"judge-{dimension.replace('_', '-')}"]
        assert [label for label, _ in bars] == ["1", "1", "2", "2", "3", "3", "4", "4", "5", "5"]  # accepted and rejected per score
        assert sum(value for _, value in bars[::2]) == len(accepted)
    assert sum(sum(c["rejected"].values()) for c in collected["judge_scores"].values()) > 0  # the stub judge rejected a few
    assert parser.data["judge_scores"]["tone"]["accepted"] == collected["judge_scores"]["tone"]["accepted"]
    assert "Mistake identification</span> <code>mistake_identification</code>" in page


def test_readable_labels_keep_their_keys(run_folders):
    _, collected, paths = run_folders
    page = paths["html"].read_text()
    assert ">No guiding question<title>no_guiding_question</title></text>" in page  # the chart's label, the key as tooltip
    assert "<h3><span title=\"states_answer\">States answer</span> <code>states_answer</code>" in page
    assert "<span title=\"generation_failed\">Rows that failed in generation</span> <code>generation_failed</code>" in page
    assert "<th>Pages</th>" in page and "<b>Student</b>" in page and "<b>Tutor</b>" in page
    assert report.label("judge_low_mistake_identification") == "Judge: low mistake identification score"


def test_zero_accepted_records_still_make_a_card_and_a_report(tmp_path):
    write_jsonl(tmp_path / "accepted.jsonl", [])
    export.run(tmp_path / "accepted.jsonl", tmp_path / "dataset")
    collected = summary.collect(tmp_path, tmp_path, tmp_path, tmp_path, tmp_path / "dataset")
    paths = report.write_reports(collected, tmp_path / "dataset")
    assert "No records were accepted" in paths["html"].read_text()
    assert yaml.safe_load(paths["card"].read_text().split("---")[1])["size_categories"] == ["n<1K"]


def test_prompt_completion_format_and_stripped_metadata(tmp_path):
    write_jsonl(tmp_path / "accepted.jsonl", _accepted(1, 3))
    options = export.ExportOptions(format="prompt_completion", strip_metadata=True, validation_ratio=0)
    result = export.run(tmp_path / "accepted.jsonl", tmp_path / "out", options)
    record = next(read_jsonl(result.train_path))
    assert set(record) == {"id", "prompt", "completion", "metadata"}
    assert [m["role"] for m in record["prompt"]] == ["user"] and [m["role"] for m in record["completion"]] == ["assistant"]
    assert "reference_answer" not in record["metadata"] and "quality" not in record["metadata"]
    assert validate(tmp_path / "out").ok


def test_max_records_balances_across_documents(tmp_path):
    records = _accepted(1, 30) + _accepted(3, 2)[2:]  # doc0 has 30 records, doc1 and doc2 two each
    write_jsonl(tmp_path / "accepted.jsonl", records)
    result = export.run(tmp_path / "accepted.jsonl", tmp_path / "out", export.ExportOptions(max_records=9))
    kept = list(read_jsonl(result.train_path)) + list(read_jsonl(result.validation_path))
    per_doc = {}
    for record in kept:
        per_doc[record["metadata"]["doc_id"]] = per_doc.get(record["metadata"]["doc_id"], 0) + 1
    assert len(kept) == 9 and per_doc == {"doc0": 5, "doc1": 2, "doc2": 2}


def test_copy_dataset_to_a_stable_path_replaces_it_whole(tmp_path, run_folders):
    folders, _, _ = run_folders
    target = tmp_path / "pvc" / "datasets" / "latest"
    export.copy_dataset(folders["dataset"], target)
    assert validate(target).ok and (target / "README.md").is_file()
    (folders["dataset"] / "validation.jsonl").write_text("")
    export.copy_dataset(folders["dataset"], target)
    assert (target / "validation.jsonl").read_text() == ""
    assert sorted(p.name for p in target.parent.iterdir()) == ["latest"]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"messages": [{"role": "assistant", "content": "Hi?"}]}, "first non-system message must be the student's"),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}, {"role": "assistant", "content": "z?"}]}, "must alternate"),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "  "}]}, "empty content"),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "tutor", "content": "y"}]}, "role 'tutor'"),
        ({"messages": [{"role": "user", "content": "x"}]}, "last message must be the tutor's"),
        ({"text": "hello"}, "no 'messages' list"),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y?"}], "extra": 1}, "unexpected top-level keys"),
    ],
)
def test_validator_names_the_problem(row, problem):
    assert any(problem in p for p in check_row(row)), check_row(row)


def test_validator_checks_every_row_and_reports_lines(tmp_path, capsys):
    good = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "What do you notice?"}]}
    lines = [json.dumps(good)] * 150 + ["{not json", json.dumps({"messages": []})]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "validation.jsonl").write_text(json.dumps(good) + "\n")
    result = validate(tmp_path)
    assert not result.ok and result.rows == {"train.jsonl": 151, "validation.jsonl": 1}
    assert any(re.search(r"train.jsonl:151: not valid JSON", p) for p in result.problems)
    assert any(re.search(r"train.jsonl:152: 'messages' must be a non-empty list", p) for p in result.problems)
    assert cli_main(["validate", str(tmp_path)]) == 1
    assert "2 problems" in capsys.readouterr().out


def test_validate_reports_an_empty_split_unless_the_export_asked_for_none(tmp_path):
    write_jsonl(tmp_path / "accepted.jsonl", _accepted(1, 3))
    export.run(tmp_path / "accepted.jsonl", tmp_path / "none", export.ExportOptions(validation_ratio=0))
    assert validate(tmp_path / "none").ok  # asked for: no validation split
    (tmp_path / "empty").mkdir()
    for name in ("train.jsonl", "validation.jsonl"):
        (tmp_path / "empty" / name).write_text("")
    report = validate(tmp_path / "empty")
    assert not report.ok and sum("no rows" in p for p in report.problems) == 2


def test_standalone_export_writes_the_card_and_the_report(tmp_path, capsys):
    (tmp_path / "filtered").mkdir()
    write_jsonl(tmp_path / "filtered" / "accepted.jsonl", _accepted(2, 3))
    write_json(tmp_path / "filtered" / "filter_metrics.json", {"accepted": 6, "rejected": 2, "reasons": {"no_guiding_question": 2}})
    assert cli_main(["export", "--input", str(tmp_path / "filtered" / "accepted.jsonl"), "--output-dir", str(tmp_path / "dataset"),
                     "--license", "CC-BY-4.0"]) == 0
    card = (tmp_path / "dataset" / "README.md").read_text()
    assert "CC-BY-4.0" in card and (tmp_path / "dataset" / "report.html").is_file()
    assert json.loads((tmp_path / "dataset" / "summary.json").read_text())["rejected_by_reason"] == {"no_guiding_question": 2}
    assert "report: " in capsys.readouterr().out
