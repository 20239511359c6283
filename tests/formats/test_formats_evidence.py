import pytest

from videoespresso.errors import FormatError
from videoespresso.formats import (
    EvidenceObject,
    box_from_cxcywh100,
    box_to_cxcywh100,
    parse_evidence,
    render_evidence,
    render_object_tag,
    strip_evidence_tags,
)
from videoespresso.schema import Box

CANONICAL = [
    "The <obj_start>man<obj_end><box_start>[[49.5, 50.25, 20, 40]]<box_end> opens the door.",
    "<obj_start>dog<obj_end><box_start>[]<box_end>",
    "First <obj_start>car<obj_end><box_start>[[10, 10, 5, 5], [80.5, 20, 10, 12.75]]<box_end>, "
    "then <obj_start>traffic light<obj_end><box_start>[]<box_end> and "
    "<obj_start>woman in red<obj_end><box_start>[[33.3, 66.6, 1.5, 2.5]]<box_end>.",
    "No tags at all.",
    "",
    "Name only: <obj_start>cup<obj_end> on the table.",
]


@pytest.mark.parametrize("text", CANONICAL)
def test_canonical_text_round_trips(text):
    parts = parse_evidence(text)
    assert render_evidence(parts) == text
    assert parse_evidence(render_evidence(parts)) == parts


def test_several_objects_and_empty_boxes():
    parts = parse_evidence(CANONICAL[2])
    objects = [p for p in parts if isinstance(p, EvidenceObject)]
    assert [o.name for o in objects] == ["car", "traffic light", "woman in red"]
    assert objects[0].boxes == [[10, 10, 5, 5], [80.5, 20, 10, 12.75]]
    assert objects[1].boxes == []
    assert strip_evidence_tags(CANONICAL[2]) == "First car, then traffic light and woman in red."


def test_tolerant_spacing_and_flat_box():
    parts = parse_evidence("a <obj_start>cat<obj_end> <box_start>[ 1,2 ,3,4 ]<box_end>")
    assert parts[1] == EvidenceObject("cat", [[1.0, 2.0, 3.0, 4.0]])


@pytest.mark.parametrize("bad", ["[[1, 2, 3]]", "[[1, 2, 3, \"x\"]]", "nope", "{\"a\": 1}"])
def test_malformed_boxes_raise_format_error(bad):
    with pytest.raises(FormatError, match="box"):
        parse_evidence(f"<obj_start>x<obj_end><box_start>{bad}<box_end>")


def test_structured_round_trip_through_records():
    obj = EvidenceObject("person", [[50, 50, 20, 40]])
    key = obj.to_key_object()
    assert key.boxes[0] == Box(x0=0.4, y0=0.3, x1=0.6, y1=0.7)
    assert EvidenceObject.from_key_object(key) == obj
    assert render_object_tag("person", key.boxes) == (
        "<obj_start>person<obj_end><box_start>[[50, 50, 20, 40]]<box_end>"
    )


@pytest.mark.parametrize(
    "box",
    [Box(x0=0.1, y0=0.2, x1=0.5, y1=0.9), Box(x0=0, y0=0, x1=1, y1=1), Box(x0=0.3, y0=0.3, x1=0.3, y1=0.3)],
)
def test_box_conversion_round_trip(box):
    back = box_from_cxcywh100(box_to_cxcywh100(box, ndigits=None))
    assert back.as_list() == pytest.approx(box.as_list())


def test_box_conversion_clamps_and_validates():
    assert box_from_cxcywh100([95, 50, 20, 10]).x1 == 1.0
    with pytest.raises(FormatError):
        box_from_cxcywh100([1, 2, 3])
    with pytest.raises(FormatError):
        box_from_cxcywh100([50, 50, -1, 10])


@pytest.mark.parametrize("text", CANONICAL)
def test_strip_undoes_render(text):
    """Stripping what the renderer wrote leaves the prose with each object's name, exactly."""
    parts = parse_evidence(text)
    plain = "".join(p.name if isinstance(p, EvidenceObject) else p for p in parts)
    assert strip_evidence_tags(render_evidence(parts)) == plain
    assert "<obj_start>" not in plain and "<box_start>" not in plain
    assert strip_evidence_tags(plain) == plain  # idempotent


def test_strip_keeps_going_past_a_malformed_box():
    text = "The <obj_start>man<obj_end><box_start>[[1, 2, 3]]<box_end> waves; <obj_start>dog<obj_end> sits."
    with pytest.raises(FormatError):
        parse_evidence(text)
    assert strip_evidence_tags(text) == "The man waves; dog sits."
