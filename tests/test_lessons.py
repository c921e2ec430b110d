"""A video is a lesson: a title (one default rule, one cleaning rule), a place in its topic
(batches keep their order, Move up / Move down), shown and edited in the studio."""

import threading

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from avatars import services as generation
from avatars.errors import InvalidRequest
from tests.builders import generate_through_preview, log_in_author, make_stored_item, make_topic
from topics import selectors
from topics.models import ContentItem
from topics.services import content_item_move, content_item_rename
from topics.validators import TITLE_MAX_CHARS, UNTITLED, default_title, validate_title

AUTHOR = ["view_topic", "view_contentitem", "add_contentitem", "change_contentitem"]


@pytest.fixture(autouse=True)
def no_inline_tasks(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}


def log_in(client, *codenames: str) -> User:
    return log_in_author(client, codenames)


def lessons(topic) -> list[tuple[int, str]]:
    return list(ContentItem.objects.filter(topic=topic).values_list("position", "title"))


def order(topic) -> list[int]:
    return [item.pk for item in selectors.topic_items_page(topic, 1)]


# --- the title rules --------------------------------------------------------------------


HEBREW = "שיעור ראשון: מבוא לפוטוסינתזה בצמחים ירוקים ובאצות ועוד"


@pytest.mark.parametrize(
    "script, title",
    [
        ("Plants turn light into sugar.", "Plants turn light into sugar."),
        ("  One\ntwo\tthree  ", "One two three"),
        ("One two three four five six seven eight nine ten",
         "One two three four five six seven eight…"),
        ("Leaves, stems, roots, flowers, seeds, fruit, bark, buds, and more",
         "Leaves, stems, roots, flowers, seeds, fruit, bark, buds…"),
        (HEBREW, HEBREW),  # eight words: whole
        (HEBREW + " רבה", HEBREW + "…"),
        ("", UNTITLED),
        (" \n\t ", UNTITLED),
    ],
)  # fmt: skip
def test_the_default_title_is_the_scripts_first_words(script, title):
    assert default_title(script) == title


def test_a_long_default_title_is_cut_at_a_word_boundary_within_80_characters():
    script = "Photosynthesis " * 3 + "chlorophyllous " * 5
    title = default_title(script)
    assert len(title) <= 80 and title.endswith("…")
    assert title[:-1].split() == script.split()[: len(title[:-1].split())]  # whole words only
    one_word = default_title("x" * 500)
    assert len(one_word) == 80 and one_word == "x" * 79 + "…"


def test_every_default_title_is_a_valid_title():
    for script in ("a", "word " * 300, "\u2028line\u2029paragraph", "\x00\x07bell", "-- -- --"):
        assert validate_title(default_title(script)) == default_title(script)


@pytest.mark.parametrize(
    "title, code",
    [("", "empty_title"), ("   ", "empty_title"), ("Two\nlines", "control_title"),
     ("Tab\there", "control_title"), ("Bell\x07", "control_title"),
     ("Line\u2028separator", "control_title"), ("x" * (TITLE_MAX_CHARS + 1), "long_title")],
)  # fmt: skip
def test_titles_are_refused_by_one_rule(title, code):
    with pytest.raises(ValidationError) as caught:
        validate_title(title)
    assert caught.value.error_list[0].code == code


def test_a_title_is_stripped_and_may_use_the_whole_limit():
    assert validate_title("  שיעור ראשון: מבוא  ") == "שיעור ראשון: מבוא"
    assert validate_title("x" * TITLE_MAX_CHARS) == "x" * TITLE_MAX_CHARS


# --- positions -------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_batch_keeps_the_order_it_was_entered_in_after_the_existing_lessons():
    topic = make_topic()
    generation.avatar_videos_generate(topic=topic, scripts=["Existing lesson."])
    jobs = generation.avatar_videos_generate(
        topic=topic, scripts=["Third.", "First?", "Second!"], titles=["", "Named lesson", ""]
    )
    assert lessons(topic) == [(1, "Existing lesson."), (2, "Third."), (3, "Named lesson"),
                              (4, "Second!")]  # fmt: skip
    assert order(topic)[1:] == [job.content_item_id for job in jobs]
    other = make_topic("Other")
    generation.avatar_videos_generate(topic=other, scripts=["Own numbering."])
    assert lessons(other) == [(1, "Own numbering.")]


@pytest.mark.django_db
def test_a_course_is_queued_in_a_few_statements_whatever_its_length():
    """The author waits on the request: a batch's items and jobs go in one insert each (a
    course of 100 took 700 statements, half a second on PostgreSQL, one lesson at a time)."""
    topic = make_topic()
    counts = []
    for size in (2, 40):
        with CaptureQueriesContext(connection) as queries:
            jobs = generation.avatar_video_request_batch(
                topic=topic, scripts=[f"Lesson {n}." for n in range(size)]
            )
        assert len({job.pk for job in jobs}) == size
        assert [job.content_item.pk for job in jobs] == order(topic)[-size:]
        counts.append(len(queries))
    # SQLite splits an insert of many columns into batches (its limit on parameters).
    assert counts[1] - counts[0] <= (0 if connection.vendor == "postgresql" else 2), counts
    assert counts[1] <= 12, counts


@pytest.mark.django_db
def test_a_bad_title_queues_nothing():
    topic = make_topic()
    with pytest.raises(InvalidRequest, match="one line"):
        generation.avatar_videos_generate(topic=topic, scripts=["A.", "B."], titles=["ok", "x\ny"])
    assert not ContentItem.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_each_get_consecutive_positions():
    topic = make_topic()
    start = threading.Barrier(2)
    errors = []

    def batch(name: str) -> None:
        try:
            start.wait()
            scripts = [f"{name} {n}." for n in range(1, 6)]
            generation.avatar_videos_generate(topic=topic, scripts=scripts)
        except Exception as error:  # reported below, in the test's thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=batch, args=(name,)) for name in ("Alpha", "Beta")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    rows = lessons(topic)
    assert [position for position, _ in rows] == list(range(1, 11))
    first = rows[0][1].split()[0]
    second = "Beta" if first == "Alpha" else "Alpha"
    # One batch after the other, each in the order its scripts were entered.
    assert [title for _, title in rows] == [f"{first} {n}." for n in range(1, 6)] + [
        f"{second} {n}." for n in range(1, 6)
    ]


@pytest.mark.django_db
def test_move_up_and_down_swap_neighbours_and_stop_at_the_ends():
    topic = make_topic()
    first, second, third = (job.content_item for job in generation.avatar_videos_generate(
        topic=topic, scripts=["One.", "Two.", "Three."]))  # fmt: skip
    assert content_item_move(content_item=third, direction="up") is True
    assert order(topic) == [first.pk, third.pk, second.pk]
    assert content_item_move(content_item=first, direction="down") is True
    assert order(topic) == [third.pk, first.pk, second.pk]
    assert content_item_move(content_item=third, direction="up") is False
    assert content_item_move(content_item=second, direction="down") is False
    assert order(topic) == [third.pk, first.pk, second.pk]
    with pytest.raises(ValueError):
        content_item_move(content_item=first, direction="sideways")


@pytest.mark.django_db
def test_moving_among_rows_that_share_a_place_numbers_them_first():
    topic = make_topic()
    items = [make_stored_item(topic, f"avatar_videos/avatar_tie_{n}.mp4", 1) for n in range(4)]
    assert {item.position for item in items} == {0}  # saved without a place: (position, id)
    assert content_item_move(content_item=items[2], direction="up") is True
    assert order(topic) == [items[0].pk, items[2].pk, items[1].pk, items[3].pk]
    assert sorted(position for position, _ in lessons(topic)) == [1, 2, 3, 4]


@pytest.mark.django_db
def test_rename_keeps_everything_else():
    item = make_stored_item(make_topic(), "avatar_videos/avatar_rn_1.mp4", 10)
    before = ContentItem.objects.values("content_data", "storage_path", "position").get()
    content_item_rename(content_item=item, title="  Light and sugar ")
    assert ContentItem.objects.get().title == "Light and sugar" == item.title
    assert ContentItem.objects.values("content_data", "storage_path", "position").get() == before
    with pytest.raises(ValidationError):
        content_item_rename(content_item=item, title="\n")
    assert ContentItem.objects.get().title == "Light and sugar"


@pytest.mark.django_db
def test_rows_saved_without_a_title_get_the_default_from_their_script():
    item = make_stored_item(make_topic(), "avatar_videos/avatar_dt_1.mp4", 10)
    assert item.title == "Hello" and ContentItem.objects.get().title == "Hello"


# --- the studio ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_topic_page_shows_lessons_first_first_with_numbers_and_titles(client):
    log_in(client, *AUTHOR)
    topic = make_topic()
    scripts = "Light comes first.\n\nThen water.\n\nSugar last."
    response = generate_through_preview(client, topic, {"script": scripts, "language": "en"})
    assert response.status_code == 302
    page = client.get(f"/topics/{topic.pk}/").content.decode()
    positions = [page.index(f">{title}</h3>") for title in
                 ("Light comes first.", "Then water.", "Sugar last.")]  # fmt: skip
    assert positions == sorted(positions)
    numbers = [page.index(f"Lesson {n}<") for n in (1, 2, 3)]
    assert numbers == sorted(numbers) and numbers[0] < positions[0]
    assert page.count('name="direction" value="down"') == 3 and page.count("Save title") == 3


@pytest.mark.django_db
def test_a_csv_upload_titles_the_videos_from_its_title_column(client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    log_in(client, *AUTHOR)
    topic = make_topic()
    upload = SimpleUploadedFile("l.csv", "title,script\nמבוא,שלום\n,Second script\n".encode())
    generate_through_preview(client, topic, {"scripts_file": upload, "language": "he"})
    assert lessons(topic) == [(1, "מבוא"), (2, "Second script")]


@pytest.mark.django_db
def test_move_down_comes_back_to_the_lesson_with_focus_on_the_same_button(client):
    log_in(client, *AUTHOR)
    topic = make_topic()
    first, second = (job.content_item for job in generation.avatar_videos_generate(
        topic=topic, scripts=["One.", "Two."]))  # fmt: skip
    response = client.post(f"/topics/{topic.pk}/videos/{first.pk}/move/", {"direction": "down"})
    assert response.status_code == 302
    assert response["Location"] == f"/topics/{topic.pk}/?focus=move-down-{first.pk}"
    assert order(topic) == [second.pk, first.pk]
    page = client.get(response["Location"]).content.decode()
    button = page.split(f'id="move-down-{first.pk}"')[1].split(">")[0]
    assert "autofocus" in button
    assert page.count("autofocus") == 1
    last = client.post(f"/topics/{topic.pk}/videos/{first.pk}/move/", {"direction": "down"},
                       follow=True)  # fmt: skip
    assert "is already the last lesson" in last.content.decode()
    assert client.post(f"/topics/{topic.pk}/videos/{first.pk}/move/",
                       {"direction": "sideways"}).status_code == 400  # fmt: skip


@pytest.mark.django_db
def test_after_a_move_the_page_that_shows_the_lesson_comes_back(client, monkeypatch):
    monkeypatch.setattr("topics.selectors.ITEMS_PER_PAGE", 10)
    log_in(client, *AUTHOR)
    topic = make_topic()
    jobs = generation.avatar_videos_generate(
        topic=topic, scripts=[f"Lesson {n}." for n in range(1, 12)]
    )
    tenth = jobs[9].content_item
    url = f"/topics/{topic.pk}/videos/{tenth.pk}/move/"
    down = client.post(url, {"direction": "down"})["Location"]
    assert down == f"/topics/{topic.pk}/?page=2&focus=move-down-{tenth.pk}"
    assert f'id="item-{tenth.pk}"' in client.get(down).content.decode()
    up = client.post(url, {"direction": "up"})["Location"]
    assert up == f"/topics/{topic.pk}/?focus=move-up-{tenth.pk}"
    assert f'id="item-{tenth.pk}"' in client.get(up).content.decode()


@pytest.mark.django_db
def test_rename_from_the_card_and_on_its_own_page(client):
    log_in(client, *AUTHOR)
    item = make_stored_item(make_topic(), "avatar_videos/avatar_rc_1.mp4", 10)
    url = f"/topics/{item.topic_id}/videos/{item.pk}/rename/"
    assert 'value="Hello"' in client.get(url).content.decode()
    response = client.post(url, {"title": "  שיעור ראשון: מבוא "})
    assert response.status_code == 302 and response["Location"].endswith(f"#item-{item.pk}")
    assert ContentItem.objects.get().title == "שיעור ראשון: מבוא"
    refused = client.post(url, {"title": "Two\nlines"})
    assert refused.status_code == 400 and 'id="error-title"' in refused.content.decode()
    assert "one line" in refused.content.decode()
    assert ContentItem.objects.get().title == "שיעור ראשון: מבוא"


@pytest.mark.django_db
@pytest.mark.parametrize("action, data", [("rename", {"title": "New"}),
                                          ("move", {"direction": "up"})])  # fmt: skip
def test_rename_and_move_need_the_change_permission(client, action, data):
    log_in(client, "view_topic", "view_contentitem")
    topic = make_topic()
    items = [make_stored_item(topic, f"avatar_videos/avatar_np_{n}.mp4", 1) for n in range(2)]
    page = client.get(f"/topics/{topic.pk}/").content.decode()
    assert "Move up" not in page and "Save title" not in page
    url = f"/topics/{topic.pk}/videos/{items[1].pk}/{action}/"
    assert client.post(url, data).status_code == 403
    assert lessons(topic) == [(0, "Hello"), (0, "Hello")]
    assert order(topic) == [items[0].pk, items[1].pk]
