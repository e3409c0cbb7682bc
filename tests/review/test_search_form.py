"""The search form's fixed choices (search.FixedChoiceField: direction, type, flags, order):
each form's copy shares its declaration's choices instead of copying them, and draws and cleans
exactly as Django's ChoiceField does; a copy given other choices keeps them to itself."""

from typing import Any

from django import forms
from hypothesis import given
from hypothesis import strategies as st

from review import search

FIXED = ("direction", "type", "flag", "sort")
DECLARED = {name: search.SearchForm.base_fields[name] for name in FIXED}
# the same fields as Django's own ChoiceField
Stock = type(
    "Stock",
    (forms.Form,),
    {
        name: forms.ChoiceField(choices=field.choices, required=False, label=field.label)  # type: ignore[attr-defined]
        for name, field in DECLARED.items()
    },
)
VALUES = st.one_of(
    st.sampled_from([str(key) for f in DECLARED.values() for key, _ in f.choices]),  # type: ignore[attr-defined]
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20),
)


@given(st.dictionaries(st.sampled_from(FIXED), VALUES))
def test_fixed_choices_draw_and_clean_as_djangos_choice_field(data: dict[str, str]) -> None:
    form = search.SearchForm(data, user=None)
    stock: Any = Stock(data)
    form.is_valid()
    stock.is_valid()
    for name in FIXED:
        assert isinstance(form.fields[name], search.FixedChoiceField)
        assert form[name].as_widget() == stock[name].as_widget()
        assert form.errors.get(name) == stock.errors.get(name)
        expected = stock.cleaned_data.get(name)
        if name == "sort" and expected == "relevance":  # SearchForm.clean: no words, no ranking
            expected = "newest"
        assert form.cleaned_data.get(name) == expected


def test_every_form_shares_the_declared_choices_and_a_copy_given_others_keeps_them() -> None:
    first, second = search.SearchForm(user=None), search.SearchForm(user=None)
    for name, declared in DECLARED.items():
        choices = declared.choices  # type: ignore[attr-defined]
        assert first.fields[name].choices is choices  # type: ignore[attr-defined]
        assert second.fields[name].choices is choices  # type: ignore[attr-defined]
        assert first.fields[name].widget.choices is declared.widget.choices  # type: ignore[attr-defined]
        assert first.fields[name].widget is not declared.widget  # its attributes its own

    first.fields["type"].choices = [("text", "words only")]  # type: ignore[attr-defined]
    first.fields["type"].widget.attrs["class"] = "narrow"
    assert ">words only<" in first["type"].as_widget()
    assert "words only" not in second["type"].as_widget()
    assert 'class="narrow"' not in second["type"].as_widget()
    assert DECLARED["type"].choices == search.TYPE_CHOICES  # type: ignore[attr-defined]
    assert DECLARED["type"].widget.attrs == {}
