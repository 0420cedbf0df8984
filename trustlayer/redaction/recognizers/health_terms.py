"""The curated, offline term list behind ``HEALTH_CONDITION``: conditions, medications, procedures.

Entries are written once and expanded: ``(x)`` marks an optional part and ``(x|y)`` a
choice, so ``tumo(u)r(s)`` stands for tumor, tumour, tumors and tumours; an apostrophe is
optional when matched (Alzheimer's, Alzheimer’s, Alzheimers); a space also matches a
hyphen (type-2 diabetes, c-section). ``PERSON_TERMS`` describe a person ("diabetic",
"pregnant") and may follow a bare "I am"; other terms need a verb ("I have asthma").
``CASE_SENSITIVE`` abbreviations are matched in capitals only, because their lower-case
forms are common words (``AIDS``/aids, ``PrEP``/meal prep, ``STD``/std::vector)::

    >>> "type 2 diabetes" in TERMS and "tumours" in TERMS
    True
    >>> "AIDS" in CASE_SENSITIVE and "aids" not in TERMS
    True
"""

from __future__ import annotations

import itertools
import re

__all__ = ["CASE_SENSITIVE", "PERSON_TERMS", "TERMS", "expand"]

_CONDITIONS = """
diabetes, type (1|2|one|two|i|ii) diabetes( mellitus), diabetes mellitus,
diabetes insipidus, gestational diabetes, prediabetes, pre diabetes, t1d, t2d, t2dm, dm2, insulin resistance,
hypoglyc(a)emia, hyperglyc(a)emia,
hypertension, high blood pressure, hypotension, low blood pressure, high cholesterol,
hypercholesterol(a)emia, heart disease, coronary artery disease, coronary heart disease, heart failure,
congestive heart failure, heart attack(s), myocardial infarction, angina, arrhythmia(s), atrial fibrillation,
afib, a fib, tachycardia, bradycardia, heart murmur, cardiomyopathy, stroke(s), mini stroke(s),
transient isch(a)emic attack, aneurysm(s), deep vein thrombosis, dvt, blood clot(s), pulmonary embolism,
peripheral artery disease, varicose veins,
asthma, copd, emphysema, chronic bronchitis, bronchitis, pneumonia, cystic fibrosis, sleep apn(o)ea,
tuberculosis, pulmonary fibrosis, long covid, covid, covid 19, coronavirus, flu, influenza, stomach flu, shingles,
mononucleosis, glandular fever, strep throat, sinusitis, tonsillitis, appendicitis, sepsis, meningitis,
lyme disease, malaria, measles, mumps, chickenpox, chicken pox, whooping cough, food poisoning,
cancer(s), breast cancer, lung cancer, prostate cancer, colon cancer, colorectal cancer, bowel cancer,
skin cancer, pancreatic cancer, ovarian cancer, cervical cancer, thyroid cancer, bladder cancer, kidney cancer,
liver cancer, stomach cancer, brain cancer, (o)esophageal cancer, testicular cancer, uterine cancer,
blood cancer, bone cancer, melanoma, leuk(a)emia, lymphoma, hodgkin's lymphoma, hodgkin's disease,
non hodgkin lymphoma, non hodgkin's lymphoma, myeloma, multiple myeloma, sarcoma, glioblastoma, glioma,
brain tumo(u)r(s), tumo(u)r(s), carcinoma, mesothelioma,
depression, major depression, major depressive disorder, clinical depression, postpartum depression,
postnatal depression, seasonal affective disorder, anxiety, anxiety disorder(s), generali(z|s)ed anxiety disorder,
social anxiety, panic disorder, panic attack(s), ptsd, post traumatic stress disorder, ocd,
obsessive compulsive disorder, bipolar disorder, manic depression, schizophrenia, schizoaffective disorder,
psychosis, borderline personality disorder, personality disorder, adhd, attention deficit disorder,
attention deficit hyperactivity disorder, autism, asperger's, asperger's syndrome, autism spectrum disorder,
eating disorder(s), anorexia, anorexia nervosa, bulimia, binge eating disorder, insomnia, narcolepsy,
suicidal thoughts, self harm, addiction, alcoholism, alcohol addiction, substance abuse, opioid addiction,
drug addiction, gambling addiction, gender dysphoria, mental illness,
dementia, alzheimer's, alzheimer's disease, parkinson's, parkinson's disease, huntington's disease,
multiple sclerosis, amyotrophic lateral sclerosis, motor neuron(e) disease, epilepsy, seizure(s),
migraine(s), chronic migraine(s), cluster headache(s), headache(s), concussion, traumatic brain injury,
cerebral palsy, neuropathy, fibromyalgia, chronic fatigue syndrome, restless leg(s) syndrome, vertigo,
lupus, rheumatoid arthritis, arthritis, osteoarthritis, psoriatic arthritis, gout, osteoporosis, osteopenia,
scoliosis, psoriasis, eczema, acne, rosacea, vitiligo, alopecia,
crohn's, crohn's disease, ulcerative colitis, colitis, ibs, irritable bowel syndrome, ibd,
inflammatory bowel disease, c(o)eliac disease, c(o)eliac, gluten intolerance, lactose intolerance, gerd,
acid reflux, stomach ulcer(s), ulcer(s), gallstones, kidney stone(s), kidney disease, chronic kidney disease, ckd,
kidney failure, renal failure, liver disease, fatty liver, fatty liver disease, cirrhosis, hernia,
h(a)emorrhoids, incontinence, enlarged prostate,
hepatitis, hepatitis a, hepatitis b, hepatitis c, hep b, hep c, hiv, chlamydia, gonorrh(o)ea, syphilis, herpes,
genital herpes, hpv, genital warts, uti(s), urinary tract infection(s), yeast infection(s), bacterial vaginosis,
endometriosis, pcos, polycystic ovary syndrome, polycystic ovarian syndrome, infertility, erectile dysfunction,
menopause, perimenopause, pregnancy, miscarriage(s), ectopic pregnancy, pre eclampsia, preeclampsia,
hypothyroidism, hyperthyroidism, thyroid disease, hashimoto's, hashimoto's disease, graves' disease,
addison's disease, cushing's syndrome, cushing's disease, an(a)emia, iron deficiency, vitamin d deficiency,
b12 deficiency, sickle cell, sickle cell disease, sickle cell an(a)emia, thalass(a)emia, h(a)emophilia,
obesity, morbid obesity, glaucoma, cataract(s), macular degeneration, tinnitus, hearing loss, deafness,
blindness, down syndrome, down's syndrome, spina bifida, muscular dystrophy, tourette's, tourette syndrome,
tourette's syndrome, dyslexia, dyspraxia, learning disability, intellectual disability,
chronic pain, back pain, chronic back pain, chest pain(s), allergy, allergies, food allergy, food allergies,
peanut allergy, nut allergy, penicillin allergy, hay fever, anaphylaxis, paralysis, sleep disorder,
blood sugar, blood glucose, a1c, hba1c, blood pressure, cholesterol,
sciatica, plantar fasciitis, carpal tunnel, carpal tunnel syndrome, diverticulitis, diverticulosis,
herniated disc, slipped disc, bulging disc, tendonitis, tendinitis, bursitis, frozen shoulder, rotator cuff tear,
torn acl, acl tear, torn meniscus, tennis elbow, spondylitis, ankylosing spondylitis, sjogren's, sjogren's syndrome,
scleroderma, sarcoidosis, myasthenia gravis, guillain barre syndrome, bell's palsy, trigeminal neuralgia,
hyperhidrosis, ehlers danlos syndrome, gastroparesis, pancreatitis, gastritis, h pylori, hiatal hernia,
hiatus hernia, barrett's (o)esophagus, cold sores, scabies, mrsa, c diff, cellulitis, stillbirth,
dissociative identity disorder, body dysmorphia, body dysmorphic disorder, agoraphobia, health anxiety,
trichotillomania, selective mutism,
meniere's disease, polymyalgia rheumatica, atrial flutter, heart palpitations, palpitations, high triglycerides,
kidney infection(s), bladder infection(s), cystitis, interstitial cystitis, pyelonephritis, overactive bladder,
prostatitis, low testosterone, vaginismus, adenomyosis, fibroid(s), uterine fibroid(s), ovarian cyst(s),
postpartum psychosis, postpartum anxiety, perinatal depression, seasonal depression, retinal detachment,
detached retina, keratoconus, otosclerosis, chronic sinusitis, nasal polyps, deviated septum, tmj disorder,
bruxism, gum disease, periodontitis, hidradenitis suppurativa, urticaria, chronic hives, dermatitis,
atopic dermatitis, contact dermatitis, bronchiectasis, pulmonary hypertension, aortic stenosis,
mitral valve prolapse, heart valve disease, peripheral neuropathy, diabetic neuropathy, essential tremor,
whiplash, bunion(s), spinal stenosis, degenerative disc disease, gastroenteritis, norovirus, conjunctivitis,
pink eye, ear infection(s), glue ear, laryngitis, pleurisy, lymph(o)edema, lipedema, raynaud's, raynaud's disease,
h(a)emochromatosis, gilbert's syndrome, marfan syndrome, turner syndrome, klinefelter syndrome,
fragile x syndrome, rett syndrome, prader willi syndrome, huntington's, tay sachs, g6pd deficiency,
factor v leiden, von willebrand disease, polyc(y)th(a)emia, neutropenia, amyloidosis, dysthymia,
persistent depressive disorder, cyclothymia, adjustment disorder, conversion disorder, hoarding disorder,
avoidant personality disorder, narcissistic personality disorder, antisocial personality disorder, catatonia,
delirium, psychotic episode, nervous breakdown, opioid use disorder, alcohol use disorder,
substance use disorder, cocaine addiction, heroin addiction, meth addiction, neuralgia, occipital neuralgia,
chiari malformation, hydrocephalus, brain injury, spinal cord injury, aphasia, dystonia, ataxia,
transverse myelitis, encephalitis, radiculopathy, long qt syndrome, wolff parkinson white syndrome,
thyroid nodule(s), goit(e)r, hyperemesis gravidarum, placenta pr(a)evia, preterm labo(u)r, low sperm count,
azoospermia, endometrial cancer, cervical dysplasia, trichomoniasis, pelvic inflammatory disease,
head and neck cancer, throat cancer, mouth cancer, oral cancer, bile duct cancer, cholangiocarcinoma,
neuroblastoma, retinoblastoma, osteosarcoma, brca mutation, brca1, brca2, lynch syndrome
"""

_MEDICATIONS = """
insulin, insulin pump, metformin, glucophage, ozempic, wegovy, semaglutide, mounjaro, tirzepatide, zepbound,
trulicity, dulaglutide, victoza, saxenda, liraglutide, jardiance, empagliflozin, farxiga, dapagliflozin,
januvia, sitagliptin, glipizide, gliclazide, lantus, humalog, novolog, levemir,
lisinopril, ramipril, enalapril, losartan, valsartan, amlodipine, metoprolol, atenolol, bisoprolol,
propranolol, carvedilol, hydrochlorothiazide, furosemide, spironolactone, atorvastatin, lipitor, simvastatin,
rosuvastatin, crestor, statin(s), beta blocker(s), blood thinner(s), warfarin, coumadin, eliquis, apixaban,
xarelto, rivaroxaban, clopidogrel, plavix, nitroglycerin, digoxin,
levothyroxine, synthroid, euthyrox,
sertraline, zoloft, fluoxetine, prozac, escitalopram, lexapro, citalopram, celexa, paroxetine, paxil,
venlafaxine, effexor, duloxetine, cymbalta, bupropion, wellbutrin, mirtazapine, trazodone, amitriptyline,
antidepressant(s), ssri(s),
lithium, quetiapine, seroquel, olanzapine, zyprexa, risperidone, risperdal, aripiprazole, abilify, clozapine,
haloperidol, antipsychotic(s), lamotrigine, lamictal, valproate, sodium valproate, depakote, carbamazepine,
tegretol, levetiracetam, keppra, topiramate, topamax, gabapentin, neurontin, pregabalin, lyrica,
alprazolam, xanax, diazepam, valium, lorazepam, ativan, clonazepam, klonopin, benzodiazepine(s), benzos,
zolpidem, ambien,
adderall, ritalin, methylphenidate, concerta, vyvanse, lisdexamfetamine, elvanse, atomoxetine, strattera,
methadone, buprenorphine, suboxone, naltrexone, oxycodone, oxycontin, hydrocodone, vicodin, morphine, fentanyl,
tramadol, codeine, percocet, opioid(s), painkiller(s),
prednisone, prednisolone, hydrocortisone, dexamethasone, steroid(s), methotrexate, humira, adalimumab, enbrel,
etanercept, remicade, infliximab, stelara, dupixent, hydroxychloroquine, plaquenil,
omeprazole, prilosec, pantoprazole, esomeprazole, nexium, lansoprazole, ranitidine,
albuterol, salbutamol, ventolin, inhaler(s), symbicort, advair, seretide, fluticasone, montelukast, singulair,
epipen(s), cpap, hearing aid(s), wheelchair,
antibiotic(s), amoxicillin, penicillin, augmentin, azithromycin, doxycycline, ciprofloxacin, cephalexin,
clindamycin, nitrofurantoin, metronidazole,
truvada, descovy, biktarvy, antiretroviral(s), antiretroviral therapy,
tamoxifen, letrozole, anastrozole, herceptin, keytruda,
ibuprofen, advil, paracetamol, acetaminophen, tylenol, aspirin, naproxen, aleve,
isotretinoin, accutane, finasteride, propecia, minoxidil, sildenafil, viagra, tadalafil, cialis,
estradiol, (o)estrogen, progesterone, hrt, hormone replacement therapy, testosterone, puberty blockers,
birth control, birth control pill(s), contraceptive pill(s), the pill, morning after pill, plan b,
cetirizine, zyrtec, loratadine, claritin, fexofenadine, allegra, diphenhydramine, benadryl, hydroxyzine,
buspirone, buspar, mesalamine, mesalazine, lialda, asacol, budesonide, entocort, azathioprine, rinvoq, xeljanz,
otezla, skyrizi, cosentyx, ocrevus, tecfidera, copaxone, sumatriptan, imitrex, rizatriptan, celecoxib, celebrex,
meloxicam, diclofenac, cyclobenzaprine, baclofen, tizanidine, ondansetron, zofran, doxepin, clonidine,
guanfacine, intuniv, modafinil, provigil, armodafinil, naloxone, narcan, nicotine patch(es), varenicline,
champix, chantix, acyclovir, valacyclovir, valtrex, paxlovid, tamiflu, oseltamivir, fluconazole, diflucan,
clomid, clomiphene, misoprostol, mifepristone, levonorgestrel, depo provera, nexplanon, mirena,
insulin glargine, tresiba, toujeo, glyburide, pioglitazone, rybelsus, contrave, phentermine, orlistat, lasix,
entresto, ticagrelor, brilinta, pradaxa, dabigatran, ezetimibe, zetia, repatha, allopurinol, colchicine,
febuxostat, alendronate, fosamax, prolia, tamsulosin, flomax, oxybutynin, mirabegron, myrbetriq, tretinoin,
minocycline, methylprednisolone, medrol, flovent, qvar, spiriva, trelegy, xolair, nucala, epinephrine,
vortioxetine, trintellix, vraylar, cariprazine, latuda, lurasidone, rexulti, brexpiprazole, spravato, esketamine,
ketamine, vivitrol, antabuse, disulfiram, acamprosate, dexedrine, dextroamphetamine, focalin,
dexmethylphenidate, qelbree, toprol, coreg, hydralazine, isosorbide, ranolazine, invokana, canagliflozin, actos,
basaglar, novorapid, fiasp, armour thyroid, cytomel, liothyronine, evenity, taltz, entyvio, vedolizumab, imuran,
cellcept, mycophenolate, tacrolimus, prograf, cyclosporine, benlysta, nurtec, ubrelvy, aimovig, emgality, ajovy,
vimpat, lacosamide, briviact, xcopri, onfi, clobazam, sinemet, levodopa, carbidopa, ropinirole, pramipexole,
aricept, donepezil, memantine, namenda, leqembi, genvoya, triumeq, dovato, cabenuva, harvoni, epclusa, sovaldi,
mavyret, revlimid, ibrance, tagrisso, opdivo, arimidex, femara, lupron, zoladex, xtandi, zytiga, capecitabine,
xeloda, cisplatin, carboplatin, paclitaxel, taxol, docetaxel, doxorubicin, cyclophosphamide, rituximab,
rituxan, imatinib, gleevec, avastin, bevacizumab, trastuzumab, pembrolizumab, nivolumab, subutex, sublocade,
temazepam, zopiclone, eszopiclone, lunesta, belsomra, prazosin, trileptal, oxcarbazepine, zonisamide,
phenytoin, dilantin, phenobarbital, epidiolex, glimepiride, janumet, byetta, exenatide, bydureon, qsymia,
heparin, lovenox, enoxaparin, amiodarone, flecainide, sotalol, diltiazem, verapamil, nifedipine, hctz,
chlorthalidone, bumetanide, torsemide, eplerenone, nebivolol, bystolic, olmesartan, irbesartan, telmisartan,
candesartan, doxazosin, terazosin, pravastatin, lovastatin, fenofibrate, gemfibrozil, vascepa, praluent,
leqvio, prasugrel, cilostazol, tiotropium, ipratropium, atrovent, pulmicort, dulera, breztri, tezspire,
fasenra, ofev, trikafta, kalydeco, tremfya, sotyktu, acitretin, cimzia, simponi, orencia, actemra, olumiant,
leflunomide, sulfasalazine, linzess, linaclotide, amitiza, xifaxan, rifaximin, creon, ursodiol, sucralfate,
famotidine, pepcid, dexilant, protonix, zantac, vesicare, solifenacin, tolterodine, proscar, avodart,
dutasteride, estrace, premarin, provera, medroxyprogesterone, norethindrone, nuvaring, kyleena, paragard,
apretude, cabotegravir, stribild, odefsey, atripla, raltegravir, dolutegravir, tivicay, darunavir, tenofovir,
emtricitabine, entecavir, bactrim, keflex, macrobid, levofloxacin, zithromax, z pack, flagyl, vancomycin,
isoniazid, ivermectin, terbinafine
"""

_PROCEDURES = """
chemo, chemotherapy, radiotherapy, radiation therapy, immunotherapy, dialysis,
mastectomy, double mastectomy, lumpectomy, hysterectomy, vasectomy, appendectomy, tonsillectomy,
colonoscopy, endoscopy, biopsy, mammogram, pap smear, ivf, abortion(s), c section, c(a)esarean,
c(a)esarean section, hip replacement, knee replacement, heart surgery, open heart surgery, bypass surgery,
triple bypass, angioplasty, stent(s), pacemaker, kidney transplant, liver transplant, heart transplant,
lung transplant, bone marrow transplant, stem cell transplant, gastric bypass, gastric sleeve,
bariatric surgery, weight loss surgery, spinal fusion, amputation, cataract surgery,
electroconvulsive therapy, psychotherapy, cognitive behaviou(r)al therapy, rehab, physical therapy,
physiotherapy, blood transfusion, gender affirming surgery, top surgery, rotator cuff surgery, acl surgery,
acl reconstruction, meniscus surgery, back surgery, spine surgery, carpal tunnel surgery, gallbladder removal,
cholecystectomy, hernia repair, hernia surgery, colostomy, ileostomy, stoma, knee surgery, hip surgery,
shoulder surgery, tubal ligation, egg freezing, embryo transfer, sterili(z|s)ation, prostatectomy,
thyroidectomy, nephrectomy, laminectomy, discectomy
"""

_PERSON_TERMS = """
diabetic, prediabetic, asthmatic, epileptic, autistic, bipolar, schizophrenic, anorexic, bulimic, suicidal,
alcoholic, dyslexic, an(a)emic, obese, infertile, pregnant, lactose intolerant, gluten intolerant,
hiv positive, hiv negative, covid positive, deaf, visually impaired, legally blind, hard of hearing,
paraly(z|s)ed, paraplegic, quadriplegic, immunocompromised, hypertensive, hypoglyc(a)emic, amputee,
c(o)eliac, colo(u)r blind, hypothyroid, hyperthyroid, neurodivergent, diabetic
"""

_CASE_SENSITIVE = """
AIDS, STD(s), STI(s), BPD, TBI, ALS, HTN, CHF, OSA, PrEP, IUD, MRI, PET scan, CT scan, ECT, PMDD, MDD, POTS, TMJ,
SVT, DCIS, ITP, MGUS
"""


def expand(entry: str) -> set[str]:
    """The spellings one entry stands for: every choice of its ``(optional)`` and ``(either|or)`` parts."""
    parts = re.split(r"\(([^()]*)\)", entry.strip())
    # parts alternates literal text and bracketed pieces: lit, opt, lit, opt, lit ...
    choices = [(p,) if i % 2 == 0 else tuple(p.split("|")) if "|" in p else ("", p) for i, p in enumerate(parts)]
    return {re.sub(r"\s+", " ", "".join(c)).strip() for c in itertools.product(*choices)}


def _entries(block: str) -> frozenset[str]:
    return frozenset(s for e in block.split(",") if e.strip() for s in expand(e))


PERSON_TERMS: frozenset[str] = _entries(_PERSON_TERMS)
"""Terms that describe a person ("diabetic", "pregnant"): "I am <term>" is enough."""

TERMS: frozenset[str] = _entries(_CONDITIONS) | _entries(_MEDICATIONS) | _entries(_PROCEDURES) | PERSON_TERMS
"""Every case-insensitive spelling, in lower case."""

CASE_SENSITIVE: frozenset[str] = _entries(_CASE_SENSITIVE)
"""Abbreviations matched only as written here."""
