"""Report wording: many phrasings per finding, normal statement and negation.

Slots: {side}/{other_side} ("left"), {lobe}/{lobe2} ("right upper lobe"), {size}/{size2}
("9 mm", "1.8 cm"), {location} ("upper pole"), {severity} ("small", "moderate"), {count},
{length} (cm), {organs} (a list). Sentences are capitalised after filling.
"""
from __future__ import annotations

ABNORMAL: dict[str, tuple[str, ...]] = {
    "nodule": (
        "a {size} solid nodule in the {lobe}.", "{size} noncalcified pulmonary nodule in the {lobe}.",
        "there is a {size} nodule in the {lobe}.", "small nodular opacity measuring {size} in the {lobe}.",
        "{lobe}: {size} nodule.", "a {size} pulmonary nodule is seen in the {side} lung.",
    ),
    "pleural effusion": (
        "{severity} {side} pleural effusion.", "there is a {severity} {side}-sided pleural effusion.",
        "{severity} amount of pleural fluid on the {side}.", "{side} pleural effusion, {severity} in size.",
        "fluid is present in the {side} pleural space.", "layering {side} pleural effusion.",
    ),
    "emphysema": (
        "{severity} centrilobular emphysema in the {side} lung.", "emphysematous changes in the {side} lung.",
        "{side} lung: {severity} emphysema, upper lobe predominant.",
        "areas of low attenuation in the {side} lung consistent with emphysema.",
        "there is {severity} emphysema of the {side} lung.",
    ),
    "consolidation": (
        "consolidation in the {lobe}.", "airspace consolidation with air bronchograms in the {lobe}.",
        "dense consolidative opacity in the {lobe}.", "there is focal consolidation of the {lobe}.",
        "{lobe}: airspace consolidation.",
    ),
    "hypodense lesion": (
        "a {size} hypodense lesion in the {lobe} hepatic lobe.",
        "hypoattenuating lesion measuring {size} in the {lobe} lobe of the liver.",
        "there is a {size} low-attenuation lesion in the liver.", "focal hypodensity ({size}) in the {lobe} liver lobe.",
        "liver: {size} hypodense focal lesion in the {lobe} lobe.",
    ),
    "hypodense lesion multiple": (
        "{count} hypodense lesions in the liver, the largest {size}.",
        "multiple hypoattenuating hepatic lesions, up to {size}.",
        "several low-attenuation liver lesions, the largest measuring {size} in the {lobe} lobe.",
    ),
    "steatosis": (
        "{severity} hepatic steatosis.", "diffusely decreased liver attenuation consistent with steatosis.",
        "fatty infiltration of the liver.", "liver parenchyma density decreased, consistent with hepatosteatosis.",
        "diffuse fatty liver.", "the liver shows {severity} steatosis.",
    ),
    "cyst": (
        "a {size} simple cyst in the {location} of the {side} kidney.", "{side} renal cortical cyst measuring {size}.",
        "well-circumscribed fluid-attenuation lesion in the {side} kidney ({size}), consistent with a simple cyst.",
        "{side} kidney: {size} Bosniak I cyst in the {location}.",
        "there is a {size} cyst arising from the {location} of the {side} kidney.",
    ),
    "stone": (
        "a {size} nonobstructing calculus in the {location} of the {side} kidney.", "{side} nephrolithiasis, {size}.",
        "{size} stone in the {side} kidney without hydronephrosis.",
        "{side} kidney: {size} renal calculus in the {location}.",
        "there is a {size} hyperdense calculus in the {side} renal collecting system.",
    ),
    "splenomegaly": (
        "splenomegaly, the spleen measuring {length} cm.", "the spleen is enlarged ({length} cm craniocaudal).",
        "enlarged spleen.", "spleen: increased in size, {length} cm.", "there is splenomegaly.",
    ),
    "cardiomegaly": (
        "cardiomegaly.", "the heart is enlarged.", "cardiac enlargement.", "heart size is increased.",
        "enlarged cardiac silhouette.",
    ),
    "pericardial effusion": (
        "{severity} pericardial effusion.", "there is a {severity} pericardial effusion.",
        "fluid in the pericardial sac, {severity}.", "pericardial fluid collection, {severity}.",
        "{severity} amount of pericardial fluid.",
    ),
    "calcification": (
        "calcific atheroma plaques are observed in the aorta.", "atherosclerotic calcification of the aorta.",
        "aortic wall calcifications.", "scattered calcified plaques along the aorta.",
        "aorta: atherosclerotic calcifications, normal caliber.", "mural calcification of the aorta.",
    ),
    "gallstone": (
        "cholelithiasis, the largest stone measuring {size}.", "a {size} calcified gallstone.",
        "gallbladder: {size} stone in the lumen.", "hyperdense calculus in the gallbladder ({size}).",
        "there is a {size} stone within the gallbladder, without wall thickening.",
    ),
}

HEDGED: dict[str, tuple[str, ...]] = {
    "nodule": ("probable {size} nodule in the {lobe}.", "{size} nodular density in the {lobe}, possibly a nodule."),
    "pleural effusion": ("possible {side} pleural effusion.", "likely {severity} {side} pleural effusion."),
    "emphysema": ("findings suggestive of emphysema in the {side} lung.", "probable {severity} emphysema, {side} lung."),
    "consolidation": ("patchy consolidation in the {lobe}, likely pneumonia.",
                      "opacity in the {lobe}, probably consolidation."),
    "hypodense lesion": ("ill-defined {size} hypodense lesion in the liver, indeterminate.",
                         "possible {size} hypodense lesion in the {lobe} hepatic lobe."),
    "steatosis": ("low liver attenuation, likely hepatic steatosis.", "findings suggestive of hepatic steatosis."),
    "cyst": ("probable {size} cyst in the {side} kidney.", "{size} hypodense {side} renal lesion, likely a cyst."),
    "stone": ("possible {size} stone in the {side} kidney.", "punctate {size} density in the {side} kidney, likely a calculus."),
    "splenomegaly": ("the spleen appears enlarged ({length} cm).", "probable splenomegaly."),
    "cardiomegaly": ("the heart appears enlarged.", "probable cardiomegaly."),
    "pericardial effusion": ("possible {severity} pericardial effusion.", "likely pericardial fluid."),
    "calcification": ("probable atherosclerotic calcification of the aorta.", "mild aortic calcification is suspected."),
    "gallstone": ("possible {size} gallstone.", "probable cholelithiasis."),
}

BILATERAL: dict[str, tuple[str, ...]] = {
    "nodule": ("bilateral pulmonary nodules, the largest measuring {size} in the {lobe}.",
               "nodules in both lungs, up to {size}.", "{size} nodule in the {lobe} and {size2} nodule in the {lobe2}."),
    "pleural effusion": ("bilateral pleural effusions.", "{severity} pleural effusions on both sides.",
                         "pleural effusions are present bilaterally."),
    "emphysema": ("{severity} centrilobular emphysema in both lungs.",
                  "bilateral emphysematous changes, upper lobe predominant.", "emphysema is present bilaterally."),
    "consolidation": ("consolidation in the {lobe} and the {lobe2}.", "bilateral airspace consolidation ({lobe}, {lobe2})."),
    "cyst": ("bilateral simple renal cysts, up to {size}.", "cysts in both kidneys, the largest {size}."),
    "stone": ("bilateral nonobstructing renal calculi, up to {size}.", "stones in both kidneys, measuring up to {size}."),
}

IMPRESSION: dict[str, tuple[str, ...]] = {
    "nodule": ("{size} {lobe} nodule.", "pulmonary nodule in the {lobe}; follow-up CT recommended."),
    "pleural effusion": ("{side} pleural effusion.", "{severity} {side} effusion."),
    "emphysema": ("emphysema ({side} lung).", "{side} pulmonary emphysema."),
    "consolidation": ("{lobe} consolidation, likely pneumonia.", "consolidation of the {lobe}."),
    "hypodense lesion": ("hypodense liver lesion, further characterisation with MRI suggested.",
                         "indeterminate hypodense hepatic lesion."),
    "steatosis": ("hepatic steatosis.", "fatty liver."),
    "cyst": ("{side} renal cyst.", "simple cyst of the {side} kidney."),
    "stone": ("nonobstructing {side} nephrolithiasis.", "{side} kidney stone."),
    "splenomegaly": ("splenomegaly.", "enlarged spleen."),
    "cardiomegaly": ("cardiomegaly.", "enlarged heart."),
    "pericardial effusion": ("pericardial effusion.", "{severity} pericardial effusion."),
    "calcification": ("aortic atherosclerosis.", "calcified aortic plaques."),
    "gallstone": ("cholelithiasis.", "gallstones without signs of cholecystitis."),
}

NEGATION: dict[str, tuple[str, ...]] = {
    "nodule": ("no pulmonary nodules.", "no suspicious lung nodule.", "no nodules are seen."),
    "pleural effusion": ("no pleural effusion.", "there is no pleural fluid.", "no effusion."),
    "emphysema": ("no emphysema.", "no emphysematous change.", "no evidence of emphysema."),
    "consolidation": ("no consolidation.", "no focal airspace opacity.", "no consolidation or mass."),
    "hypodense lesion": ("no focal hepatic lesion.", "no focal liver lesion.", "no hypodense liver lesion."),
    "steatosis": ("no hepatic steatosis.", "normal liver attenuation.", "no fatty infiltration of the liver."),
    "cyst": ("no {side} renal cyst.", "no cyst in the {side} kidney.", "no {side} renal mass or cyst."),
    "stone": ("no {side} renal calculus.", "no stones in the {side} kidney.", "no {side} nephrolithiasis."),
    "pericardial effusion": ("no pericardial effusion.", "no pericardial fluid.", "the pericardium is unremarkable."),
    "cardiomegaly": ("heart size is normal.", "no cardiomegaly.", "the heart is not enlarged."),
}

NORMAL: dict[str, tuple[str, ...]] = {
    "lungs": ("the lungs are clear.", "no pulmonary nodules, consolidation or emphysema.",
              "lungs: clear, no focal consolidation.", "both lungs are normally aerated.",
              "lung parenchyma is unremarkable bilaterally.", "the lung parenchyma is normal."),
    "lung": ("the {side} lung is clear.", "{side} lung: no nodules or consolidation.",
             "no focal opacity in the {side} lung.", "the {side} lung parenchyma is normal.", "clear {side} lung."),
    "pleura": ("no pleural effusion.", "no pleural effusion or pneumothorax.", "pleural spaces are clear.",
               "there is no pleural fluid.", "no pleural thickening or effusion."),
    "pleura and pericardium": ("no pleural or pericardial effusion.",
                               "no pleural or pericardial effusion was detected.",
                               "pleural and pericardial spaces are free of fluid.",
                               "no fluid in the pleural or pericardial spaces.",
                               "neither pleural nor pericardial effusion."),
    "heart": ("heart size is normal.", "heart contour and size are normal.", "the heart is not enlarged.",
              "normal cardiac size.", "heart: normal size, no pericardial effusion.", "no cardiomegaly."),
    "pericardium": NEGATION["pericardial effusion"] + ("pericardium: normal.", "there is no pericardial effusion."),
    "aorta": ("the aorta is normal in caliber.", "no aortic calcification.",
              "aorta: normal caliber without atherosclerotic plaques.",
              "the thoracic and abdominal aorta are unremarkable.", "normal aortic caliber; no mural calcification."),
    "liver": ("the liver is unremarkable.", "no focal hepatic lesion.", "liver: normal size and attenuation.",
              "the liver is normal in size and attenuation without focal lesion.",
              "liver parenchyma is homogeneous.", "normal liver."),
    "gallbladder": ("the gallbladder is unremarkable.", "no gallstones.", "gallbladder: normal, no calculi.",
                    "the gallbladder is well distended with no radiopaque stones.", "no cholelithiasis."),
    "spleen": ("the spleen is normal in size.", "no splenomegaly.", "spleen: unremarkable.",
               "normal splenic size and attenuation.", "the spleen is unremarkable."),
    "kidneys": ("both kidneys are unremarkable.", "kidneys: normal size, no hydronephrosis, stones or cysts.",
                "no renal calculi or focal renal lesions.", "the kidneys enhance symmetrically and are normal in size.",
                "bilateral kidneys appear normal."),
    "kidney": ("the {side} kidney is unremarkable.", "{side} kidney: normal, no stones or cysts.",
               "no {side} renal calculus or mass.", "normal appearance of the {side} kidney.",
               "the {side} kidney enhances normally without focal lesion."),
    "airways": ("trachea and both main bronchi are open.", "the central airways are patent.",
                "trachea and main bronchi: patent.", "no endobronchial lesion.", "the trachea is midline and patent."),
    "mediastinum": ("no mediastinal or hilar lymphadenopathy.", "mediastinal structures are unremarkable.",
                    "no enlarged mediastinal lymph nodes.", "mediastinum: no mass or adenopathy.",
                    "the mediastinum is within normal limits."),
    "pancreas": ("the pancreas is unremarkable.", "pancreas: normal.", "no pancreatic mass or ductal dilatation.",
                 "normal pancreatic contour and enhancement.", "the pancreas appears normal."),
    "adrenals": ("the adrenal glands are normal.", "adrenals: unremarkable.", "no adrenal nodule.",
                 "both adrenal glands are within normal limits.", "normal adrenal glands."),
    "bowel": ("no bowel obstruction.", "bowel loops are unremarkable.", "stomach and bowel: normal caliber.",
              "no bowel wall thickening.", "the visualised bowel is unremarkable."),
    "bones": ("bone structures in the study area are natural.", "no lytic or blastic osseous lesion.",
              "osseous structures are intact.", "no acute fracture.", "bones: no suspicious lesion."),
}

GROUP_NORMAL = ("the {organs} are unremarkable.", "{organs}: no abnormality.", "normal {organs}.",
                "the {organs} appear normal.", "no abnormality of the {organs}.")

NORMAL_IMPRESSION = ("no acute abnormality in the chest or abdomen.", "unremarkable CT of the chest and abdomen.",
                     "no significant abnormality.", "normal study.", "no acute findings.",
                     "no CT evidence of acute disease.")

TECHNIQUE = ("contrast-enhanced CT of the chest and abdomen.",
             "CT chest and abdomen with intravenous contrast in the portal venous phase.",
             "axial images were obtained from the thoracic inlet to the iliac crests after IV contrast.",
             "technique: helical CT with IV contrast, 3 mm axial reconstructions with coronal reformats.",
             "multidetector CT of the thorax and upper abdomen following intravenous contrast.")

HISTORY = ("clinical history: cough and fever.", "indication: abdominal pain.",
           "history: staging of known malignancy.", "indication: follow-up.", "reason for exam: shortness of breath.",
           "clinical information: weight loss.", "history: trauma, rule out injury.")

COMPARISON = ("comparison: none.", "no prior studies are available for comparison.",
              "comparison is made with no previous imaging.", "no previous examination.")
