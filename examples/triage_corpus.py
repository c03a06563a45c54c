"""A synthetic corpus of banking and insurance complaints for the complaint-triage example models.

Each complaint is assembled from templates: an opening, a sentence naming the product, a sentence
describing the issue, optional context (some of it mentions family, money or other products
without being a vulnerability cue, so the classifiers cannot lean on single words), an optional
vulnerability cue (bereavement, illness, job loss, debt stress, age or caring), and a closing.
Every complaint carries three labels, one per triage task:

* `product`: mortgage, credit-card, current-account, car-insurance, home-insurance;
* `issue`: fees-charges, fraud-scam, service-delay, mis-selling, technical-fault;
* `vulnerable`: vulnerable, not-vulnerable.

`generate_corpus(n, seed)` is deterministic.
"""

from __future__ import annotations

import numpy as np

PRODUCTS = ("mortgage", "credit-card", "current-account", "car-insurance", "home-insurance")
ISSUES = ("fees-charges", "fraud-scam", "service-delay", "mis-selling", "technical-fault")
VULNERABILITY = ("vulnerable", "not-vulnerable")

# Which corpus label each triage task predicts.
TASKS = {"product": PRODUCTS, "issue": ISSUES, "vulnerability": VULNERABILITY}

_PRODUCT_PHRASES = {
    "mortgage": [
        "my mortgage",
        "the mortgage on our house",
        "my remortgage application",
        "my fixed rate mortgage",
        "our mortgage repayments",
        "my home loan",
        "the mortgage offer you sent",
        "my tracker mortgage",
    ],
    "credit-card": [
        "my credit card",
        "the credit card statement",
        "the credit limit on my card",
        "the balance transfer on my credit card",
        "my rewards credit card",
        "my credit card account",
        "the minimum payment on my credit card",
        "my credit card bill",
    ],
    "current-account": [
        "my current account",
        "my everyday bank account",
        "the overdraft on my current account",
        "my debit card and current account",
        "our joint current account",
        "my student current account",
        "the standing orders on my current account",
        "my bank account",
    ],
    "car-insurance": [
        "my car insurance",
        "my motor policy",
        "the claim on my car insurance after a collision",
        "my vehicle insurance renewal",
        "my no claims bonus",
        "the motor claim for my car",
        "the courtesy car on my car insurance",
        "my comprehensive car cover",
    ],
    "home-insurance": [
        "my home insurance",
        "my buildings and contents policy",
        "the claim for flood damage to my kitchen",
        "my house insurance renewal",
        "the contents cover on my home insurance",
        "the storm damage claim on my home",
        "my landlord building insurance",
        "the burst pipe claim under my home policy",
    ],
}

_PRODUCT_FRAMES = [
    "I am writing about {p}.",
    "This complaint is about {p}.",
    "There is a problem with {p}.",
    "I want to complain about {p}.",
    "I need to raise an issue with {p}.",
    "Regarding {p}.",
]

_ISSUE_SENTENCES = {
    "fees-charges": [
        "I was charged a fee of {amount} pounds without any warning.",
        "You added late payment charges even though I paid on time.",
        "The arrangement fee was never explained to me.",
        "There is an unexpected charge of {amount} pounds on my statement.",
        "The interest charged is far higher than I was quoted.",
        "An admin fee of {amount} pounds was taken for a simple change.",
        "I have been charged twice the agreed premium with an extra fee.",
    ],
    "fraud-scam": [
        "Someone used my details to take {amount} pounds.",
        "I was scammed by a caller pretending to be from your fraud team.",
        "There are transactions I did not make and did not authorise.",
        "A fraudster got into my online account and moved money.",
        "I received a fake text message and lost {amount} pounds to criminals.",
        "A claim was made in my name by someone I do not know.",
        "My identity was stolen and a scammer used it with you.",
    ],
    "service-delay": [
        "I have been waiting {weeks} weeks for a response.",
        "Nobody has called me back despite being promised a call.",
        "It has been stuck for {weeks} weeks with no progress.",
        "It is taking forever to process and nobody can tell me why.",
        "I have chased this {times} times and I am still waiting.",
        "The payout was promised {weeks} weeks ago and still has not arrived.",
        "Every time I call I am put on hold for over an hour.",
    ],
    "mis-selling": [
        "I was sold a product that was not suitable for me.",
        "The adviser did not explain the terms before I signed.",
        "I was pressured into buying add-on cover I did not need.",
        "Nobody told me about the exclusions when I bought it.",
        "The salesperson misled me about the real cost.",
        "I was told it was the best option but it was clearly wrong for my circumstances.",
        "The risks were never explained when it was sold to me.",
    ],
    "technical-fault": [
        "The app keeps crashing when I try to log in.",
        "The website showed an error and my payment failed.",
        "Online banking has been down all day.",
        "I cannot reset my password because the system is broken.",
        "A payment went out twice because of a glitch in your system.",
        "The online form freezes every time I press submit.",
        "Your system shows the wrong balance because of a technical error.",
    ],
}

_VULNERABILITY_CUES = [
    "My husband passed away last month and I am dealing with everything on my own.",
    "Since my mother died I have been struggling to cope.",
    "I am recently bereaved and find this very hard.",
    "I have been diagnosed with cancer and I am going through treatment.",
    "I suffer from severe anxiety and depression and this is making it worse.",
    "I have just come out of hospital after a stroke.",
    "I lost my job in {month} and money is very tight.",
    "I was made redundant recently and have no income.",
    "I am struggling to pay my bills and I am behind on my rent.",
    "I am in serious debt and cannot afford any of this.",
    "I am a full time carer for my disabled son.",
    "I am {age} years old, I live alone and I do not use computers.",
    "My wife has dementia and I have lost track of our finances.",
    "I have had to use a food bank this month.",
    "My mental health has been very poor and I have had thoughts of giving up.",
    "I am disabled and cannot get to a branch.",
]

_NEUTRAL_CONTEXT = [
    "I have been a customer for {years} years.",
    "My wife and I have held this with you for a long time.",
    "My mother recommended you to me.",
    "I also have a savings account with you which has been fine.",
    "I work full time so it is hard to call during the day.",
    "I paid for our holiday with no problems last year.",
    "My son helped me find the relevant letters.",
    "I have all the paperwork to hand.",
    "My reference number is {ref}.",
    "I moved house last year and updated my address with you.",
    "I had a good experience with your staff in the past.",
    "I earn a good salary and always pay on time.",
]

_OPENINGS = ["Hello,", "Dear Sir or Madam,", "To whom it may concern,", "Hi,", "Good morning,", ""]
_CLOSINGS = [
    "Please look into this urgently.",
    "I expect a full refund.",
    "This is very disappointing.",
    "I would like this resolved quickly.",
    "Please call me back.",
    "I want an apology and compensation.",
    "",
]
_MONTHS = ("January", "March", "May", "July", "September", "November")


def generate_corpus(n: int, seed: int, vulnerable_share: float = 0.35) -> list[dict[str, str]]:
    """Return `n` complaints, each `{"text", "product", "issue", "vulnerability"}`."""
    rng = np.random.default_rng(seed)

    def pick(options):
        return options[int(rng.integers(0, len(options)))]

    def fill(template: str) -> str:
        return template.format(
            amount=int(rng.integers(5, 2500)),
            weeks=int(rng.integers(2, 13)),
            times=int(rng.integers(3, 15)),
            years=int(rng.integers(1, 30)),
            ref=f"CX{int(rng.integers(10_000, 99_999))}",
            month=pick(_MONTHS),
            age=int(rng.integers(78, 96)),
        )

    corpus = []
    for _ in range(n):
        product = pick(PRODUCTS)
        issue = pick(ISSUES)
        vulnerable = bool(rng.random() < vulnerable_share)
        body = [
            pick(_PRODUCT_FRAMES).format(p=pick(_PRODUCT_PHRASES[product])),
            fill(pick(_ISSUE_SENTENCES[issue])),
        ]
        if rng.random() < 0.5:
            body.insert(int(rng.integers(0, len(body) + 1)), fill(pick(_NEUTRAL_CONTEXT)))
        if vulnerable:
            body.insert(int(rng.integers(0, len(body) + 1)), fill(pick(_VULNERABILITY_CUES)))
        if rng.random() < 0.15:
            # A passing mention of another product (not the subject of the complaint).
            other = pick([p for p in PRODUCTS if p != product])
            body.append(f"I also hold {pick(_PRODUCT_PHRASES[other])} with you but that is not the problem.")
        text = " ".join(part for part in [pick(_OPENINGS), *body, pick(_CLOSINGS)] if part)
        corpus.append(
            {
                "text": text,
                "product": product,
                "issue": issue,
                "vulnerability": "vulnerable" if vulnerable else "not-vulnerable",
            }
        )
    return corpus
