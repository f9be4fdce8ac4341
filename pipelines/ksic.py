"""The 25 manufacturing divisions (C10-C34) of the Korean Standard Industrial Classification (KSIC, 10th rev.).

A tenant carries one of these codes; industry profiles (which canonical tables and feature sets apply)
are keyed by it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KsicDivision:
    code: str  # "C10" .. "C34"
    name_ko: str
    name_en: str


KSIC_DIVISIONS: dict[str, KsicDivision] = {
    d.code: d
    for d in (
        KsicDivision("C10", "식료품 제조업", "Manufacture of food products"),
        KsicDivision("C11", "음료 제조업", "Manufacture of beverages"),
        KsicDivision("C12", "담배 제조업", "Manufacture of tobacco products"),
        KsicDivision("C13", "섬유제품 제조업; 의복 제외", "Manufacture of textiles, except apparel"),
        KsicDivision(
            "C14",
            "의복, 의복 액세서리 및 모피제품 제조업",
            "Manufacture of wearing apparel, clothing accessories and fur articles",
        ),
        KsicDivision("C15", "가죽, 가방 및 신발 제조업", "Manufacture of leather, luggage and footwear"),
        KsicDivision(
            "C16",
            "목재 및 나무제품 제조업; 가구 제외",
            "Manufacture of wood and of products of wood and cork, except furniture",
        ),
        KsicDivision("C17", "펄프, 종이 및 종이제품 제조업", "Manufacture of pulp, paper and paper products"),
        KsicDivision("C18", "인쇄 및 기록매체 복제업", "Printing and reproduction of recorded media"),
        KsicDivision(
            "C19",
            "코크스, 연탄 및 석유정제품 제조업",
            "Manufacture of coke, briquettes and refined petroleum products",
        ),
        KsicDivision(
            "C20",
            "화학 물질 및 화학제품 제조업; 의약품 제외",
            "Manufacture of chemicals and chemical products, except pharmaceuticals",
        ),
        KsicDivision(
            "C21",
            "의료용 물질 및 의약품 제조업",
            "Manufacture of pharmaceuticals, medicinal chemicals and botanical products",
        ),
        KsicDivision("C22", "고무 및 플라스틱제품 제조업", "Manufacture of rubber and plastics products"),
        KsicDivision("C23", "비금속 광물제품 제조업", "Manufacture of other non-metallic mineral products"),
        KsicDivision("C24", "1차 금속 제조업", "Manufacture of basic metals"),
        KsicDivision(
            "C25",
            "금속 가공제품 제조업; 기계 및 가구 제외",
            "Manufacture of fabricated metal products, except machinery and furniture",
        ),
        KsicDivision(
            "C26",
            "전자 부품, 컴퓨터, 영상, 음향 및 통신장비 제조업",
            "Manufacture of electronic components, computers, visual, sound and communication equipment",
        ),
        KsicDivision(
            "C27",
            "의료, 정밀, 광학 기기 및 시계 제조업",
            "Manufacture of medical, precision and optical instruments, watches and clocks",
        ),
        KsicDivision("C28", "전기 장비 제조업", "Manufacture of electrical equipment"),
        KsicDivision("C29", "기타 기계 및 장비 제조업", "Manufacture of other machinery and equipment"),
        KsicDivision("C30", "자동차 및 트레일러 제조업", "Manufacture of motor vehicles, trailers and semitrailers"),
        KsicDivision("C31", "기타 운송장비 제조업", "Manufacture of other transport equipment"),
        KsicDivision("C32", "가구 제조업", "Manufacture of furniture"),
        KsicDivision("C33", "기타 제품 제조업", "Other manufacturing"),
        KsicDivision(
            "C34",
            "산업용 기계 및 장비 수리업",
            "Repair of industrial machinery and equipment",
        ),
    )
}


def normalize_ksic(code: str) -> str:
    """Return the canonical ``Cnn`` form of a KSIC manufacturing division, or raise ``ValueError``.

    Accepts ``C29``, ``c29`` and ``29``.
    """
    raw = str(code).strip().upper()
    if raw.isdigit():
        raw = f"C{raw}"
    if raw not in KSIC_DIVISIONS:
        raise ValueError(f"unknown KSIC manufacturing division {code!r}: expected one of C10-C34 (e.g. C29 machinery)")
    return raw
