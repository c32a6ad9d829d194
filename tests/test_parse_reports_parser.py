"""The report parser on real spaCy pipelines: sections, sentences, organs, laterality, negation, hedging."""
from __future__ import annotations

import gc

import pytest

from stages.parse_reports import ReportParser
from stages.parse_reports.lexicon import LEXICON_DIR, LexiconError, load_lexicon, plural_forms
from stages.parse_reports.parser import ReportText, split_long_text
from stages.parse_reports.readable import UnreadableReport
from stages.parse_reports.pipeline import build_pipeline
from stages.parse_reports.tokens import flagged_spans, plain_spans, sentence_starts


@pytest.fixture(scope="module")
def parser() -> ReportParser:
    return ReportParser()


def states(report) -> dict[str, str]:
    return {organ: "uncertain" if r.uncertain else "abnormal" if r.abnormal else "normal"
            for organ, r in report.organs.items()}


def abnormalities(report) -> dict[str, list[str]]:
    return {organ: row.abnormalities for organ, row in report.organs.items()}


def test_pipeline_is_spacy_with_registered_components(parser):
    assert parser.nlp.pipe_names == ["ctglip_report_sections", "ctglip_report_terms", "ctglip_report_sentences", "ctglip_report_clauses",
                                     "negation", "hedging", "ctglip_report_grounding"]
    assert parser.nlp.config["components"]["negation"]["factory"] == "ctglip_negex"
    negation_terms = parser.nlp.config["components"]["negation"]["neg_termset"]["following_negations"]
    for radiology_term in ("was not observed", "within normal limits", "unremarkable", "natural", "preserved", "open"):
        assert radiology_term in negation_terms


@pytest.fixture(scope="module")
def annotating_nlp():
    """The pipeline as a spaCy user builds it: ``doc.spans``, sentence starts and ``span._`` flags written."""
    return build_pipeline()


def test_sentences_survive_measurements_lists_abbreviations_and_missing_final_period(annotating_nlp):
    doc = annotating_nlp("1. A 2.3 x 1.8 cm lesion in the liver, approx. 5 mm from the capsule. 2. Dr. Smith was informed\n"
                     "- No pleural effusion\n- Heart normal")
    sentences = [span.text for span in doc.spans["sentences"]]
    assert sentences == ["A 2.3 x 1.8 cm lesion in the liver, approx. 5 mm from the capsule.",
                         "Dr. Smith was informed", "No pleural effusion", "Heart normal"]


def test_technique_and_history_are_not_findings(parser):
    report = parser.parse(text="CLINICAL HISTORY: lung cancer, rule out pleural effusion.\n"
                               "TECHNIQUE: CT of the chest without contrast.\n"
                               "FINDINGS:\nMild cardiomegaly.\n\nIMPRESSION:\nCardiomegaly.")
    assert states(report) == {"heart": "abnormal"}
    assert report.organs["heart"].texts == ["Mild cardiomegaly.", "Cardiomegaly."]
    assert report.sentences == 2


def test_inline_history_in_a_findings_column_covers_its_own_sentence(parser):
    report = parser.parse(findings="Clinical information: smoker with cough. Emphysema in both lungs.")
    assert states(report) == {"lung_left": "abnormal", "lung_right": "abnormal"}


def test_ct_rate_normality_words_and_negated_lists(parser):
    report = parser.parse(findings=(
        "Trachea and both main bronchi are open. Pericardial effusion-thickening was not observed. "
        "No pleural or pericardial effusion was detected. Bone structures in the study area are natural. "
        "Vertebral corpus heights are preserved. No nodule, mass, or consolidation in either lung."))
    assert not any(r.abnormal for r in report.organs.values())
    assert {"trachea", "heart", "lung_left", "lung_right", "vertebrae_thoracic", "ribs_left"} <= set(report.organs)
    assert report.organs["heart"].negated_abnormalities == ["pericardial effusion", "pericardial thickening"]


def test_implied_organs_are_grounded_through_the_lexicon(parser):
    report = parser.parse(findings="Pericardial effusion. Hepatosteatosis. Sliding type hiatal hernia. Emphysema. "
                                   "Cholelithiasis. Ground-glass opacities. Atelectasis.")
    assert set(report.organs) == {"heart", "liver", "esophagus", "stomach", "lung_left", "lung_right", "gallbladder"}
    assert report.organs["lung_left"].abnormalities == ["emphysema", "ground-glass opacity", "atelectasis"]


@pytest.mark.parametrize(("text", "expected"), [
    ("Left-sided pleural effusion.", {"lung_left"}),
    ("Nodule in the lower lobe of the right lung.", {"lung_right"}),
    ("Bilateral renal cysts.", {"kidney_left", "kidney_right"}),
    ("Both lungs are emphysematous.", {"lung_left", "lung_right"}),
    ("Consolidation in the lingula.", {"lung_left"}),
    ("RML atelectasis.", {"lung_right"}),
    ("Pleural effusions bilaterally.", {"lung_left", "lung_right"}),
    ("Minimal pleural effusion is observed on the left.", {"lung_left"}),
    ("Compression fracture of T12.", {"vertebrae_thoracic"}),
    ("Degenerative changes at L4-L5 and L5-S1.", {"vertebrae_lumbar", "sacrum"}),
    ("A cyst in the right lobe of the liver.", {"liver"}),
])
def test_laterality_lobes_and_spine_levels(parser, text, expected):
    report = parser.parse(findings=text)
    assert set(report.organs) == expected
    assert all(r.abnormal for r in report.organs.values())


def test_multi_organ_sentence_is_split_into_clauses(parser):
    report = parser.parse(findings="Left kidney contains a 12 mm cyst, the right kidney is normal.")
    assert states(report) == {"kidney_left": "abnormal", "kidney_right": "normal"}
    assert report.organs["kidney_left"].text == "Left kidney contains a 12 mm cyst."
    assert report.organs["kidney_right"].text == "The right kidney is normal."


def test_hedges_mark_uncertain(parser):
    report = parser.parse(findings="Possible small nodule in the right upper lobe. Pneumonia cannot be excluded in "
                                   "the left lower lobe. ? small pericardial effusion. The liver is enlarged.")
    assert states(report) == {"lung_right": "uncertain", "lung_left": "uncertain", "heart": "uncertain",
                              "liver": "abnormal"}
    assert report.organs["lung_right"].hedged_abnormalities == ["nodule"]


def test_british_spellings_and_plurals_match(parser):
    report = parser.parse(findings="Oesophageal wall thickening. Haemorrhagic renal cysts on the right. "
                                   "Pleural effusions. Diverticula in the sigmoid colon.")
    assert report.organs["esophagus"].abnormalities == ["wall thickening"]
    assert report.organs["kidney_right"].abnormalities == ["hemorrhage", "cyst"]
    assert report.organs["colon"].abnormalities == ["diverticulosis"]


@pytest.mark.parametrize(("text", "organ", "phrase"), [
    ("Multiple hypoattenuating lesions in the liver.", "liver", "hypodense lesion"),
    ("Diffuse fatty infiltration of the liver.", "liver", "steatosis"),
    ("Simple cortical cyst of the left kidney.", "kidney_left", "cyst"),
    ("Non-obstructing calculus in the right kidney.", "kidney_right", "stone"),
    ("Micronodules in the left upper lobe.", "lung_left", "nodule"),
    ("Small right pleural effusion.", "lung_right", "pleural effusion"),
    ("Centrilobular emphysematous changes in the left lung.", "lung_left", "emphysema"),
    ("Airspace consolidation in the right lower lobe.", "lung_right", "consolidation"),
    ("The spleen is enlarged.", "spleen", "splenomegaly"),
    ("Heart size increased.", "heart", "cardiomegaly"),
    ("Pericardial fluid.", "heart", "pericardial effusion"),
    ("Calcific atheroma plaques in the aorta.", "aorta", "calcification"),
    ("Several gallstones in the gallbladder.", "gallbladder", "gallstone"),
])
def test_canonical_phrases_of_the_benchmark_label_space(parser, text, organ, phrase):
    assert phrase in parser.parse(findings=text).organs[organ].abnormalities


@pytest.mark.parametrize(("text", "expected"), [
    ("Liver: 21 mm hypodense focal lesion in the right lobe.", {"liver": "abnormal"}),
    ("LIVER:\nSteatosis. Hypodense lesion in the right lobe.", {"liver": "abnormal"}),
    ("The liver is enlarged, and there is a hypodense lesion in the left lobe.", {"liver": "abnormal"}),
    ("Thyroid: 8 mm nodule in the left lobe.", {"thyroid_gland": "abnormal"}),
    ("Spleen: hypodense lesion in the lower pole.", {"spleen": "abnormal"}),
    ("Left kidney: cyst in the upper pole.", {"kidney_left": "abnormal"}),
    ("Kidneys: cyst in the upper pole on the right.", {"kidney_left": "normal", "kidney_right": "abnormal"}),
    ("Pancreas: hypodense lesion in the tail.", {"pancreas": "abnormal"}),
    ("Stomach: wall thickening in the body.", {"stomach": "abnormal"}),
    ("Nodule in the caudate lobe.", {"liver": "abnormal"}),
    ("Hypodense lesion in segment 4a.", {"liver": "abnormal"}),
    ("Right lower lobe nodule.", {"lung_right": "abnormal"}),
    ("Nodule in the right lobe.", {"lung_right": "abnormal"}),
    ("Liver: normal. Lungs: nodule in the right lobe.", {"liver": "normal", "lung_left": "normal",
                                                          "lung_right": "abnormal"}),
    ("Nodule in the right lower lobe segment 6.", {"lung_right": "abnormal"}),
])
def test_part_words_belong_to_the_organ_named_in_context(parser, text, expected):
    assert states(parser.parse(findings=text)) == expected


@pytest.mark.parametrize(("text", "organ", "phrases"), [
    ("Liver: 21 mm hypodense focal lesion in the right lobe.", "liver", ["hypodense lesion"]),
    ("Small hypoattenuating lesion in the liver.", "liver", ["hypodense lesion"]),
    ("Well-circumscribed hypodense lesion in the spleen.", "spleen", ["hypodense lesion"]),
    ("Hypodense 2.3 x 1.8 cm lesion in the liver.", "liver", ["hypodense lesion"]),
    ("Indeterminate hypodense hepatic lesion.", "liver", ["hypodense lesion"]),
    ("15 mm hypodense right renal lesion.", "kidney_right", ["hypodense lesion"]),
    ("Hypodense focal lesion in the right lower lobe.", "lung_right", ["lesion"]),
    ("Low attenuation areas in the right lung.", "lung_right", ["decreased attenuation"]),
    ("Hypodense mass in the head of the pancreas.", "pancreas", ["mass"]),
    ("A 1.3 cm calcified gallstone.", "gallbladder", ["gallstone"]),
    ("Calcified aortic plaques.", "aorta", ["calcification"]),
    ("There is a 9 mm hyperdense calculus in the left renal collecting system.", "kidney_left", ["stone"]),
    ("Dense consolidative opacity in the right upper lobe.", "lung_right", ["consolidation"]),
    ("Fluid-attenuation lesion in the right kidney.", "kidney_right", ["cyst"]),
    ("Pericardial fluid collection, moderate.", "heart", ["pericardial effusion"]),
])
def test_a_describing_finding_and_its_head_are_one_finding(parser, text, organ, phrases):
    report = parser.parse(findings=text)
    assert report.organs[organ].abnormalities == phrases
    assert not any(r.abnormal for name, r in report.organs.items() if name != organ)


def test_a_negated_joined_finding_stays_negated(parser):
    report = parser.parse(findings="No hypodense liver lesion.")
    assert states(report) == {"liver": "normal"}
    assert report.organs["liver"].negated_abnormalities == ["hypodense lesion"]


@pytest.mark.parametrize(("name", "edit", "message"), [
    ("findings.json", ('"heads": {"opacity": "consolidation"', '"heads": {"opacity": "consolidaton"'),
     "unknown finding entries"),
    ("organ_terms.json", ('"owners": ["pancreas"]', '"owners": ["pancreaz"]'), "needs known 'owners'"),
    ("findings.json", ('"region_prior": true', '"region_prior": "yes"'), "must be true or false"),
])
def test_lexicon_errors_name_the_file(tmp_path, name, edit, message):
    for path in LEXICON_DIR.iterdir():
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    text = (tmp_path / name).read_text(encoding="utf-8")
    assert edit[0] in text
    (tmp_path / name).write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")
    with pytest.raises(LexiconError, match=rf"{name}.*{message}"):
        load_lexicon(tmp_path)


def test_unassigned_sentences_are_kept_for_review(parser):
    report = parser.parse(findings="Mediastinal lymphadenopathy. The lungs are clear.")
    assert [(s.text, s.abnormalities) for s in report.unassigned] == [("Mediastinal lymphadenopathy.",
                                                                         ["lymphadenopathy"])]


def test_huge_reports_are_cut_at_line_or_sentence_ends():
    text = "No pleural effusion. " * 5000
    pieces = split_long_text(text, limit=20_000)
    assert "".join(pieces) == text
    assert all(len(piece) <= 20_000 and piece.endswith(". ") for piece in pieces[:-1])


def test_word_variants_cover_plurals_and_british_spellings():
    norms = load_lexicon().word_norms
    assert norms["lungs"] == "lung" and norms["calculi"] == "calculus" and norms["oedema"] == "edema"
    assert norms["haematomas"] == "hematoma" and norms["pneumothoraces"] == "pneumothorax"
    assert plural_forms("opacity", {}) == {"opacities"} and plural_forms("metastasis", {}) == {"metastases"}


@pytest.mark.parametrize(("text", "organ", "source"), [
    ("The left adrenal gland is thickened.", "adrenal_gland_left", "clause"),
    ("The left adrenal gland is natural. A 2 cm adenoma is seen.", "adrenal_gland_left", "context"),
    ("The left adrenal gland is thickened. A 2 cm adenoma is seen.", "adrenal_gland_left", "clause"),
    ("Adrenals: normal.\n\nSpleen normal. A 2 cm adenoma is seen on the left.", "adrenal_gland_left", "prior"),
    ("Adrenals: normal.\n\nSpleen normal. A 2 cm adenoma is seen on the left.", "adrenal_gland_right", "clause"),
    ("Millimetric calculi image is observed.", "kidney_left", "prior"),
    ("Upper abdomen: millimetric calculi image is observed.", "kidney_right", "heading"),
    ("Gallbladder is natural in size. Millimetric calculi are observed.", "gallbladder", "context"),
])
def test_grounded_by_names_the_most_trusted_source(parser, text, organ, source):
    assert parser.parse(findings=text).organs[organ].grounded_by == source


def test_context_only_rows_are_marked_context(parser):
    report = parser.parse(findings="The thyroid gland is enlarged. Calcified plaques in the aorta. A 1 cm nodule is seen.")
    assert report.organs["aorta"].grounded_by == "clause"
    assert "lung_left" not in report.organs or report.organs["lung_left"].grounded_by == "prior"
    report = parser.parse(findings="Findings:\nThe right adrenal gland is thickened.\nA 2 cm adenoma is seen.")
    assert states(report) == {"adrenal_gland_right": "abnormal"}


def test_previous_sentence_organ_needs_a_finding_that_fits_it(parser):
    report = parser.parse(findings="Heart contour and size are normal. Millimetric nodules are observed.")
    assert states(report) == {"heart": "normal", "lung_left": "abnormal", "lung_right": "abnormal"}
    report = parser.parse(findings="The trachea is in the midline. No enlarged mediastinal lymph nodes.")
    assert report.organs["trachea"].texts == ["The trachea is in the midline."]


def test_blank_line_and_heading_forget_the_previous_organ(parser):
    report = parser.parse(findings="The left adrenal gland is natural.\n\nA 14 mm adenoma is seen.")
    assert states(report)["adrenal_gland_right"] == "abnormal" and report.organs["adrenal_gland_right"].grounded_by == "prior"
    report = parser.parse(findings="The spleen is normal. Bones: old fracture lines are observed.")
    assert states(report) == {"spleen": "normal", "ribs_left": "abnormal", "ribs_right": "abnormal"}


def test_prior_word_cues_and_region_heading_limits(parser):
    assert states(parser.parse(findings="Cortical cyst of 2 cm on the left.")) == {"kidney_left": "abnormal"}
    assert states(parser.parse(findings="Fracture with loss of height.")) == {
        "vertebrae_thoracic": "abnormal", "vertebrae_lumbar": "abnormal"}
    report = parser.parse(findings="Mediastinum: no lymphadenopathy.")
    assert not report.organs and [s.text for s in report.unassigned] == ["Mediastinum: no lymphadenopathy."]


@pytest.mark.parametrize("entry", ['{"x": {"surfaces": ["x"], "sites": ["nowhere"]}}',
                                   '{"x": {"surfaces": ["x"], "fallback_words": {"w": ["nowhere"]}}}'])
def test_lexicon_refuses_unknown_organs_in_priors(tmp_path, entry):
    import shutil
    folder = tmp_path / "lexicon"
    shutil.copytree(LEXICON_DIR, folder)
    (folder / "findings.json").write_text(entry)
    with pytest.raises(LexiconError, match=r"findings.json.*nowhere"):
        load_lexicon(folder)


@pytest.mark.parametrize(("heading", "text"), [
    ("Upper abdomen:", "Millimetric calculus is observed."),
    ("MEDIASTINUM:", "Calcified atheroma plaques in the arch. No pericardial effusion."),
    ("Lungs and airways:", "A 4 mm nodule is observed."),
    ("Upper abdominal organs included in the sections:", "Sludge is observed."),
    ("Bones:", "Degenerative changes."),
    ("Kidneys:", "Normal."),
])
def test_a_heading_alone_on_its_line_sets_the_context_like_an_inline_heading(parser, heading, text):
    inline, alone, blank = (parser.parse(findings=heading + joiner + text) for joiner in (" ", "\n", "\n\n"))
    assert not alone.unassigned and not blank.unassigned
    assert states(alone) == states(blank) == states(inline) and states(alone)
    assert all(heading.rstrip(":") not in " ".join(row.texts) for row in alone.organs.values())


def test_a_heading_line_naming_no_organ_ends_the_previous_heading(parser):
    report = parser.parse(findings="Liver: normal in size.\nLymph nodes:\nNo enlarged lymph nodes.\nFindings:\nOther:")
    assert states(report) == {"liver": "normal"}
    assert [s.text for s in report.unassigned] == ["No enlarged lymph nodes."]


@pytest.mark.parametrize(("text", "expected"), [
    ("Right pleural effusion, which may be secondary to heart failure.", {"lung_right": "abnormal", "heart": "normal"}),
    ("The appearance in the left lower lobe may be secondary to atelectasis.", {"lung_left": "uncertain"}),
    ("Findings in the left lower lobe may be compatible with pneumonia.", {"lung_left": "uncertain"}),
    ("Consolidation in the left lower lobe, compatible with pneumonia.", {"lung_left": "abnormal"}),
    ("Appearance in favor of emphysema in both lungs.", {"lung_left": "abnormal", "lung_right": "abnormal"}),
    ("Metastasis cannot be completely excluded in the liver.", {"liver": "uncertain"}),
    ("Density increase in the right lower lobe is likely related to atelectasis.", {"lung_right": "abnormal"}),
    ("Right lower lobe atelectasis. Pneumonia is less likely.", {"lung_right": "abnormal", "lung_left": "normal"}),
    ("Pneumonia is not likely.", {"lung_right": "normal", "lung_left": "normal"}),
])
def test_hedges_follow_the_radiologist_commitment(parser, text, expected):
    assert states(parser.parse(findings=text)) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Horseshoe kidney.", {"kidney_left": "abnormal", "kidney_right": "abnormal"}),
    ("Left pelvic kidney.", {"kidney_left": "abnormal"}),
    ("No duplicated collecting system.", {"kidney_left": "normal", "kidney_right": "normal"}),
])
def test_renal_anomalies_are_abnormal_kidneys(parser, text, expected):
    """A congenital anomaly named with its organ word ("horseshoe kidney") is a finding, not a plain kidney mention."""
    assert states(parser.parse(findings=text)) == expected


@pytest.mark.parametrize("text", ["Liver contour is nodular.", "The liver surface is nodular and the spleen is normal."])
def test_a_nodular_liver_contour_said_as_a_predicate_is_cirrhotic_morphology(parser, text):
    assert parser.parse(findings=text).organs["liver"].abnormalities == ["cirrhosis"]


@pytest.mark.parametrize(("text", "expected"), [
    ("Linear atelectasis in the middle lobe of the right lung and the lingular segment of the left lung.",
     {"lung_right": "abnormal", "lung_left": "abnormal"}),
    ("Atelectasis of the right lung and the left lower lobe.", {"lung_right": "abnormal", "lung_left": "abnormal"}),
    ("Atelectasis of the right lung.", {"lung_right": "abnormal"}),
    ("Atelectasis in the lower lobe on the right.", {"lung_right": "abnormal"}),
])
def test_a_side_word_before_an_organ_word_is_the_organs_not_the_findings(parser, text, expected):
    """"of the right lung": "right" belongs to the lung, so the finding still covers every organ the clause names."""
    assert states(parser.parse(findings=text)) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Right lower lobe consolidation and left pleural effusion.",
     {"lung_right": ["consolidation"], "lung_left": ["pleural effusion"]}),
    ("Right lower lobe consolidation and left lower lobe atelectasis.",
     {"lung_right": ["consolidation"], "lung_left": ["atelectasis"]}),
    ("Atelectasis in the left lower lobe and consolidation in the right lower lobe.",
     {"lung_left": ["atelectasis"], "lung_right": ["consolidation"]}),
    ("Consolidation in the right lower lobe, and to a lesser extent in the left lower lobe.",
     {"lung_right": ["consolidation"], "lung_left": ["consolidation"]}),
    ("Emphysema in both lungs and a right upper lobe nodule.",
     {"lung_left": ["emphysema"], "lung_right": ["emphysema", "nodule"]}),
])
def test_each_finding_of_a_list_keeps_the_organ_named_beside_it(parser, text, expected):
    """A finding that names its organ ("consolidation": a lung) takes the lung named in its own part of the list,
    not the one another finding of the list sits with; a part naming no finding is shared."""
    assert abnormalities(parser.parse(findings=text)) == expected


@pytest.mark.parametrize("text", ["Right and left lower lobe consolidation.", "Left/right lower lobe consolidation.",
                                  "Right and left lower lobes show consolidation."])
def test_a_side_word_coordinated_with_a_sided_organ_term_names_that_organ_too(parser, text):
    """"Right and left lower lobe": "left lower lobe" is one term; the "right" before "and" is its other side."""
    assert abnormalities(parser.parse(findings=text)) == {"lung_left": ["consolidation"], "lung_right": ["consolidation"]}


@pytest.mark.parametrize(("text", "expected"), [
    ("Gallbladder is not visualized (operated).", ["postoperative changes"]),
    ("The gallbladder was not observed (cholecystectomy).", ["cholecystectomy"]),
    ("Gallbladder was not observed, it was operated.", ["postoperative changes"]),
])
def test_a_non_observation_explained_by_surgery_is_the_surgery(parser, text, expected):
    """"not visualized (operated)": the "not" of the non-observation denies the organ, not its explanation."""
    assert parser.parse(findings=text).organs["gallbladder"].abnormalities == expected


@pytest.mark.parametrize("text", ["Not seen: pleural effusion.", "Pleural effusion not seen (previously small).",
                                  "Pleural effusion not identified (resolved)."])
def test_a_non_observation_still_denies_its_finding(parser, text):
    assert states(parser.parse(findings=text)) == {"lung_left": "normal", "lung_right": "normal"}


@pytest.mark.parametrize("text", ["Degenerative changes were observed in the bone structures within the sections.",
                                  "Osteophytes in the bony structures.", "Diffuse idiopathic skeletal hyperostosis."])
def test_degenerative_changes_of_the_bones_are_the_spines(parser, text):
    """A region word ("bone structures") places a finding flagged ``region_prior`` at its prior organs only."""
    assert abnormalities(parser.parse(findings=text)) == {"vertebrae_thoracic": ["degenerative changes"],
                                                          "vertebrae_lumbar": ["degenerative changes"]}


def test_calculi_in_the_upper_abdominal_organs_are_renal(parser):
    report = parser.parse(findings="Millimetric calculi in the upper abdominal organs.")
    assert abnormalities(report) == {"kidney_left": ["stone"], "kidney_right": ["stone"]}


def test_a_diffuse_bone_finding_and_a_denial_keep_the_whole_region(parser):
    assert len(parser.parse(findings="Osteopenic bones.").organs) > 10
    report = parser.parse(findings="No lytic or sclerotic lesion in the bone structures.")
    assert len(report.organs) > 10 and not any(row.abnormalities for row in report.organs.values())


def test_a_clause_framing_its_sentence_describes_only_the_organs_the_sentence_names(parser):
    report = parser.parse(findings="In the upper abdominal organs within the sections, there is a 2 cm hypodense "
                                   "lesion in the liver. The spleen is normal.")
    assert sorted(report.organs) == ["liver", "spleen"]
    framed = parser.parse(findings="In the upper abdominal organs within the sections, no pathology was detected.")
    assert {"liver", "spleen", "pancreas", "kidney_left"} <= set(framed.organs)


@pytest.mark.parametrize("text", ["The thoracic aorta is normal. The main pulmonary artery is enlarged.",
                                  "Heart size normal. Pulmonary trunk is dilated at 34 mm."])
def test_a_vessel_outside_the_anatomy_table_does_not_take_the_previous_sentences_organ(parser, text):
    report = parser.parse(findings=text)
    assert not any(row.abnormalities for row in report.organs.values())
    assert [row.abnormalities for row in report.unassigned] in ([["enlargement"]], [["dilatation"]])


@pytest.mark.parametrize(("text", "expected"), [
    ("The liver is larger than normal (craniocaudal 19 cm).", {"liver": ["hepatomegaly"]}),
    ("Left kidney is smaller than normal.", {"kidney_left": ["atrophy"]}),
    ("The liver is not larger than normal.", {"liver": []}),
])
def test_a_size_compared_with_normal_is_a_size_finding(parser, text, expected):
    """"larger than normal" holds the word "normal" but states an enlargement."""
    assert abnormalities(parser.parse(findings=text)) == expected


@pytest.mark.parametrize("text", ["The previously seen liver lesion is no longer visualized.",
                                  "The liver lesion is no longer identified."])
def test_a_finding_no_longer_seen_is_denied(parser, text):
    row = parser.parse(findings=text).organs["liver"]
    assert row.abnormalities == [] and row.negated_abnormalities == ["lesion"]


@pytest.mark.parametrize(("text", "expected"), [("Cardiomediastinal silhouette within normal limits.", []),
                                              ("The cardiomediastinal silhouette is enlarged.", ["cardiomegaly"])])
def test_the_cardiomediastinal_silhouette_is_the_heart(parser, text, expected):
    assert abnormalities(parser.parse(findings=text)) == {"heart": expected}


def test_no_acute_cardiopulmonary_abnormality_is_a_normal_heart_and_lungs(parser):
    assert states(parser.parse(impression="No acute cardiopulmonary abnormality.")) == \
        {"heart": "normal", "lung_left": "normal", "lung_right": "normal"}


def test_a_schmorl_nodule_is_a_degenerative_change_of_the_spine_not_a_lung_nodule(parser):
    report = parser.parse(findings="Appearance consistent with Schmorl's nodule.")
    assert abnormalities(report) == {"vertebrae_thoracic": ["degenerative changes"],
                                     "vertebrae_lumbar": ["degenerative changes"]}


@pytest.mark.parametrize("text", ["A 1 cm nodule in the left breast.", "Subcutaneous nodule in the back.",
                                  "Spiculated mass in the left breast."])
def test_a_finding_outside_every_organ_unit_is_not_given_its_prior(parser, text):
    """A nodule's prior is the lungs, but not when the sentence places it in the breast or under the skin."""
    report = parser.parse(findings=text)
    assert report.organs == {} and len(report.unassigned) == 1 and report.unassigned[0].abnormalities


@pytest.mark.parametrize("text", ["A left pleural effusion may be present.", "Small left pleural effusion may be seen."])
def test_a_finding_that_may_be_present_is_hedged(parser, text):
    assert states(parser.parse(findings=text)) == {"lung_left": "uncertain"}


def test_a_heading_naming_no_organ_ends_the_heading_before_it(parser):
    """A structured template: "Lymph nodes:" and "Chest wall:" name no organ unit, so their lines are not the heart's
    or the spine's; "Visualized upper abdomen:" is the upper-abdominal region."""
    report = parser.parse(text="FINDINGS:\nHeart and pericardium: Normal.\nLymph nodes: No enlarged thoracic lymph nodes.\n"
                               "Thoracic spine: Normal.\nChest wall: Normal.\nVisualized upper abdomen: Normal.")
    assert report.organs["heart"].texts == ["Heart and pericardium: Normal."]
    assert report.organs["heart"].negated_abnormalities == []
    assert report.organs["vertebrae_thoracic"].texts == ["Thoracic spine: Normal."]
    assert report.organs["liver"].texts == ["Visualized upper abdomen: Normal."]
    assert [row.text for row in report.unassigned] == ["Lymph nodes: No enlarged thoracic lymph nodes.",
                                                        "Chest wall: Normal."]


@pytest.mark.parametrize("text", ["The right adrenal gland is normal; the left is thickened.",
                                  "The right adrenal gland is normal, the left is thickened."])
def test_a_side_alone_after_a_semicolon_names_the_organ_before_it(parser, text):
    assert states(parser.parse(findings=text)) == {"adrenal_gland_right": "normal", "adrenal_gland_left": "abnormal"}


def test_a_region_heading_on_its_own_line_keeps_its_findings_inside_the_region(parser):
    """Under "Upper abdominal organs included in the sections:" a sided nodule is not the lung's (its prior), and under
    "Neck:" the one organ a nodule can be in is the thyroid; a finding that fits no single organ stays unassigned."""
    report = parser.parse(findings="Upper abdominal organs included in the sections:\nNodular thickening is observed "
                                   "on the left.\nMillimetric calculi are present.\nNeck:\nA 9 mm nodule on the right.")
    assert abnormalities(report) == {"kidney_left": ["stone"], "kidney_right": ["stone"], "thyroid_gland": ["nodule"]}
    assert [row.text for row in report.unassigned] == ["Nodular thickening is observed on the left."]


def test_an_inline_region_heading_of_a_one_line_report_stops_ruling_at_its_sentence_end(parser):
    report = parser.parse(findings="Mediastinum: no mass. No acute fracture.")
    assert states(report) == {"ribs_left": "normal", "ribs_right": "normal"}


@pytest.mark.parametrize("text", ["Right lower lobe opacity, atelectasis versus pneumonia.",
                                  "Atelectasis vs. pneumonia in the right lower lobe."])
def test_both_alternatives_of_versus_are_hedged(parser, text):
    row = parser.parse(findings=text).organs["lung_right"]
    assert set(row.hedged_abnormalities) == {"atelectasis", "pneumonia"}


@pytest.mark.parametrize("text", ["Nodule in the right upper lobe stable vs prior.",
                                  "Nodule in the right upper lobe, stable versus the previous study."])
def test_versus_the_prior_study_is_a_comparison_not_a_hedge(parser, text):
    assert states(parser.parse(findings=text)) == {"lung_right": "abnormal"}


@pytest.mark.parametrize(("text", "expected"), [
    ("Tracheostomy tube in place.", ["tracheostomy"]), ("Mild tracheomalacia.", ["tracheomalacia"]),
    ("Saber-sheath trachea.", ["saber-sheath trachea"]), ("Debris in the trachea.", ["secretion"]),
])
def test_tracheal_findings_name_the_trachea(parser, text, expected):
    assert abnormalities(parser.parse(findings=text)) == {"trachea": expected}


@pytest.mark.parametrize(("text", "expected"), [("Patulous esophagus with air-fluid level.", ["dilatation"]),
                                              ("Achalasia.", ["achalasia"])])
def test_esophageal_findings(parser, text, expected):
    assert abnormalities(parser.parse(findings=text)) == {"esophagus": expected}


@pytest.mark.parametrize("text", ["Enlarged lymph nodes adjacent to the left adrenal gland.", "Ascites around the liver.",
                                  "Pneumomediastinum extending along the trachea."])
def test_a_finding_in_no_organ_unit_is_unassigned_though_an_organ_is_named_beside_it(parser, text):
    report = parser.parse(findings=text)
    assert report.organs == {} and len(report.unassigned) == 1 and report.unassigned[0].abnormalities


@pytest.mark.parametrize(("text", "expected"), [
    ("Scattered calcified granulomas.", {"lung_left": ["granuloma"], "lung_right": ["granuloma"]}),
    ("Calcified splenic granulomas.", {"spleen": ["granuloma"]}),
])
def test_a_granuloma_naming_no_organ_is_the_lungs(parser, text, expected):
    assert abnormalities(parser.parse(findings=text)) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Porcelain gallbladder.", {"gallbladder": ["porcelain gallbladder"]}),
    ("Gallbladder polyp of 5 mm.", {"gallbladder": ["polyp"]}),
    ("Polypoid lesion in the sigmoid colon.", {"colon": ["polyp"]}),
    ("Pneumobilia.", {"liver": ["pneumobilia"]}),
    ("Adrenal myelolipoma on the right.", {"adrenal_gland_right": ["myelolipoma"]}),
])
def test_abdominal_findings_have_their_own_phrases(parser, text, expected):
    assert abnormalities(parser.parse(findings=text)) == expected


@pytest.mark.parametrize("text", ["? Small right pleural effusion.", "?Small right pleural effusion.",
                                  "No ascites. ? Small right pleural effusion.", "No ascites.\n? Small right pleural effusion."])
def test_a_question_mark_opening_a_sentence_queries_what_follows(parser, text):
    """UK style "? Effusion": the "?" opens the sentence it hedges (it used to end an empty one)."""
    report = parser.parse(findings=text)
    assert states(report)["lung_right"] == "uncertain"
    assert report.organs["lung_right"].texts == ["Small right pleural effusion."]  # its own sentence


@pytest.mark.parametrize(("text", "certain", "hedged"), [
    ("Right lower lobe consolidation ?infection.", ["consolidation"], ["infection"]),
    ("Small nodule in the right lung, ?granuloma.", ["nodule"], ["granuloma"]),
    ("Consolidation in the right lower lobe?", [], ["consolidation"]),
])
def test_a_question_mark_glued_to_a_word_queries_that_word_only(parser, text, certain, hedged):
    row = parser.parse(findings=text).organs["lung_right"]
    assert [p for p in row.abnormalities if p not in row.hedged_abnormalities] == certain
    assert row.hedged_abnormalities == hedged


@pytest.mark.parametrize(("text", "expected"), [
    ("Hepatic secondaries.", {"liver": "abnormal"}),
    ("No hepatic secondaries.", {"liver": "normal"}),
    ("Secondaries are suspected in both lungs.", {"lung_left": "uncertain", "lung_right": "uncertain"}),
    ("Right pleural effusion secondary to heart failure.", {"lung_right": "abnormal", "heart": "normal"}),
])
def test_secondaries_are_metastases_but_secondary_to_is_a_cause(parser, text, expected):
    """British "secondaries" keeps its own norm (a distinct plural), so it never matches as "secondary"."""
    report = parser.parse(findings=text)
    assert states(report) == expected
    assert all(row.abnormalities in ([], ["metastasis"]) for row in report.organs.values() if "secondaries" in text.lower())


def test_spacy_annotations_match_the_plain_tuples_the_parser_reads(parser, annotating_nlp):
    """The parser's pipeline skips the spaCy annotations; a pipeline writing them grounds the same way, and what
    it writes is what the components pass each other."""
    text = ("FINDINGS:\nLiver: 2 cm hypodense lesion in the right lobe, possibly a cyst. No pleural effusion; the right "
            "kidney is normal, left renal calculus. Heart: cardiomegaly?\n\nIMPRESSION:\nNo hepatic metastasis.")
    annotated, plain = annotating_nlp(text), parser.nlp(text)
    assert annotated._.report_clauses == plain._.report_clauses and plain._.report_clauses
    assert not plain.spans and annotated.spans
    for key in ("section_headers", "sections", "organs", "sides", "findings", "sentences", "clauses"):
        written = [(span.start, span.end, span.kb_id_ or span.label_) for span in annotated.spans[key]]
        assert written == plain_spans(annotated, key) == plain_spans(plain, key), key
    assert [sentence.start for sentence in annotated.sents] == sentence_starts(annotated) == sentence_starts(plain)
    negated = {(span.start, span.end) for span in annotated.spans["findings"] if span._.negex}
    hedged = {(span.start, span.end) for span in annotated.spans["findings"] if span._.hedged}
    assert negated == flagged_spans(plain, "negex", "findings") and hedged == flagged_spans(plain, "hedged", "findings")
    assert negated and hedged


def test_parse_many_gives_each_report_its_parse_or_its_error(parser):
    """Batches mix good and bad reports: each result is what ``parse`` gives alone, or the error that stopped it."""
    texts = [ReportText(findings="Mild cardiomegaly. No pleural effusion."),
             ReportText(findings="Karaciğer normal boyutlarda. Safra kesesi doğal görünümde. Dalak normal."),
             ReportText(text="FINDINGS:\nLeft renal cyst.\n\nIMPRESSION:\nNo hepatic metastasis."),
             ReportText(findings="Right lower lobe consolidation.", impression="Pneumonia.")]
    results = list(parser.parse_many(texts * 20))  # 80 reports: more than one batch
    assert len(results) == 80 and all(result.seconds > 0 for result in results)
    for text, result in zip(texts * 20, results):
        if text.findings and text.findings.startswith("Karaciğer"):
            assert isinstance(result.error, UnreadableReport) and result.report is None
            continue
        alone = parser.parse(findings=text.findings, impression=text.impression, text=text.text)
        assert result.error is None and states(result.report) == states(alone) and states(alone)
        assert {organ: r.texts for organ, r in result.report.organs.items()} == \
            {organ: r.texts for organ, r in alone.organs.items()}


def test_a_huge_report_keeps_its_section_across_pieces(parser):
    """A report cut into pieces for spaCy: a TECHNIQUE header in the first piece still rules the second."""
    text = "FINDINGS:\nNo pleural effusion.\nTECHNIQUE:\n" + "Axial images were obtained. " * 1000 + \
        "Contrast was given to the left renal artery."
    assert len(split_long_text(text)) > 1
    report = parser.parse(text=text)
    assert report.sentences == 1 and sorted(report.organs) == ["lung_left", "lung_right"]


def test_parsing_makes_no_reference_cycles(parser):
    """``heap.collector_paused`` keeps the cyclic collector off while a batch is parsed: reference counting alone
    frees what parsing allocates (a failed report's error, with its traceback, is the one cycle, freed later)."""
    good = [ReportText(findings="Mild cardiomegaly. No pleural effusion. 5 mm nodule in the right upper lobe."),
            ReportText(text="FINDINGS:\nLiver: 2 cm cyst in the right lobe.\nKidneys: normal.\n\n"
                            "IMPRESSION:\nHepatic cyst.", impression="No acute finding.")]
    list(parser.parse_many(good))
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        results = list(parser.parse_many(good * 40))
        assert all(result.error is None for result in results)
        del results
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()
    assert gc.isenabled() == enabled
