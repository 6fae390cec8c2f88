"""The columns derived from a record (tasks/ingest/derive.py): Midjourney's parameters, who
asked and the parent, from records shaped as the proxies send them (FACTS.md, FACTS-2.md
§2.6 and §3), and odd values that must give empty columns, never an exception."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.ingest import derive
from tasks.ingest.records import normalise

CHANNEL = "1300000000000000001"

# trueai v11, a finished IMAGINE (FACTS-2 §2.6, example 2; values made up).
TRUEAI_IMAGINE = {
    "id": "1754380000123457",
    "properties": {
        "discordInstanceId": CHANNEL,
        "discordChannelId": CHANNEL,
        "finalPrompt": "lighthouse at dusk, watercolor --ar 3:2 --v 7",
        "messageContent": "**lighthouse at dusk, watercolor --ar 3:2 --v 7** - <@1402> (relaxed)",
        "botType": "MID_JOURNEY",
    },
    "parentId": None,
    "botType": "MID_JOURNEY",
    "realBotType": None,
    "userId": "user",
    "instanceId": CHANNEL,
    "action": "IMAGINE",
    "status": "SUCCESS",
    "prompt": "lighthouse at dusk, watercolor --ar 3:2 --v 7",
    "promptEn": "lighthouse at dusk, watercolor --ar 3:2 --v 7",
    "description": "/imagine lighthouse at dusk, watercolor --ar 3:2 --v 7",
    "state": "order-42",
    "submitTime": 1754380000123,
    "progress": "100%",
    "mode": "RELAX",
    "requestMode": "RELAX",
    "seed": "3141592653",
    "version": "v 7",
}

# novicezk's open-source proxy: no mode, no user, the account in properties only.
NOVICEZK_UPSCALE = {
    "id": "1700000000000002",
    "properties": {
        "notifyHook": "https://mjsite.example/hooks/mj/x/",
        "finalPrompt": "Cat --niji 6 --ar 16:9",
        "discordInstanceId": "1118138338562560102",
        "messageContent": "**Cat --niji 6 --ar 16:9** - Image #1 <@1>",
    },
    "action": "UPSCALE",
    "status": "SUCCESS",
    "prompt": "猫猫 --niji 6 --ar 16:9",
    "promptEn": "Cat --niji 6 --ar 16:9",
    "description": "/up 1700000000000001 U1",
    "state": "uid:17",
    "submitTime": 1700000000000,
    "progress": "100%",
}

# A new-api relay's row turned into the camelCase shape: botType "", user_id kept.
RELAY = {
    "id": "1754380000123456",
    "action": "IMAGINE",
    "customId": "",
    "botType": "",
    "prompt": "lighthouse at dusk",
    "promptEn": "lighthouse at dusk",
    "description": "提交成功",
    "state": "",
    "submitTime": 1754380000200,
    "status": "SUCCESS",
    "progress": "100%",
    "properties": {"finalPrompt": "lighthouse at dusk --v 7", "finalZhPrompt": ""},
    "user_id": 3,
}

PARAMETERS = ("mode", "request_mode", "version", "aspect", "seed", "bot", "account", "caller")
EMPTY = dict.fromkeys(PARAMETERS + ("parent_task_id",), "")


def parameters(item):
    columns = derive.columns(item)
    return {name: columns[name] for name in PARAMETERS + ("parent_task_id",)}


def with_fields(item, **fields):
    return {**item, **fields}


def test_a_trueai_record_gives_every_column_from_its_own_fields():
    assert parameters(TRUEAI_IMAGINE) == {
        "mode": "relax",
        "request_mode": "relax",
        "version": "7",
        "aspect": "3:2",
        "seed": "3141592653",
        "bot": "MID_JOURNEY",
        "account": CHANNEL,
        "caller": "user",
        "parent_task_id": "",
    }


def test_a_novicezk_record_gives_the_parent_from_its_command_and_the_caller_from_state():
    assert parameters(NOVICEZK_UPSCALE) == {
        **EMPTY,
        "version": "niji 6",
        "aspect": "16:9",
        "bot": "NIJI_JOURNEY",  # from --niji: the record names no bot
        "account": "1118138338562560102",
        "caller": "uid:17",
        "parent_task_id": "1700000000000001",
    }


def test_a_relay_record_gives_the_caller_from_user_id_and_no_bot_from_an_empty_one():
    assert parameters(RELAY) == {**EMPTY, "version": "7", "caller": "3"}


@pytest.mark.parametrize(
    "message, mode",
    [
        ("**cat --v 6** - <@123> (relaxed)", "relax"),
        ("**cat** - <@123> (fast)", "fast"),
        ("**cat** - <@123> (fast, stealth)", "fast"),
        ("**cat** - <@123> (turbo)", "turbo"),
        ("**cat** - <@123> (46%) (Relaxed)", "relax"),
        ("**cat (fast)** - <@123> (Waiting to start)", "fast"),
        ("**cat** - <@123> (Waiting to start)", ""),
        ("**cat** - Image #1 <@123>", ""),
    ],
)
def test_without_a_mode_field_the_mode_is_read_from_the_messages_tail(message, mode):
    item = {"id": "1", "properties": {"messageContent": message}}
    assert derive.columns(item)["mode"] == mode


def test_the_mode_field_wins_over_the_message():
    item = with_fields(TRUEAI_IMAGINE, mode="TURBO")
    assert derive.columns(item)["mode"] == "turbo"


@pytest.mark.parametrize(
    "prompt, version, aspect, seed",
    [
        ("cat --v 6.1", "6.1", "", ""),
        ("cat --version 5.2 --ar 4:3", "5.2", "4:3", ""),
        ("cat --niji 6 --aspect 9:16 --seed 42", "niji 6", "9:16", "42"),
        ("cat --niji", "niji", "", ""),
        ("cat --V6 --AR 16 : 9", "6", "16:9", ""),
        ("cat \u2014v 7 \u2014ar 2:3", "7", "2:3", ""),  # a phone's em dash
        ("cat --v 5 --v 6.1", "6.1", "", ""),  # the last one counts, as in Midjourney
        ("cat --vibe 3 --ar x --seed -1 --v", "", "", ""),
        ("cat --stylize 250 --chaos 10", "", "", ""),
        ("a --ar 16:9 --v 6 --seed 12345678901", "6", "16:9", "12345678901"),
    ],
)
def test_version_aspect_and_seed_are_read_from_the_prompt(prompt, version, aspect, seed):
    columns = derive.columns({"id": "1", "action": "IMAGINE", "prompt": prompt})
    assert (columns["version"], columns["aspect"], columns["seed"]) == (version, aspect, seed)


def test_final_prompt_comes_first_then_prompt_en_then_prompt():
    item = {
        "id": "1",
        "prompt": "猫 --v 5 --ar 1:1 --seed 1",
        "promptEn": "cat --v 6 --ar 4:3",
        "properties": {"finalPrompt": "cat --v 7"},
    }
    columns = derive.columns(item)
    assert (columns["version"], columns["aspect"], columns["seed"]) == ("7", "4:3", "1")


def test_trueais_version_and_seed_fields_count_only_when_the_prompt_says_nothing():
    assert derive.columns(with_fields(TRUEAI_IMAGINE, version="niji 6"))["version"] == "7"
    bare = with_fields(TRUEAI_IMAGINE, prompt="cat", promptEn="cat", properties={})
    assert derive.columns(with_fields(bare, version="niji 6"))["version"] == "niji 6"
    assert derive.columns(with_fields(bare, version="v 6.1"))["version"] == "6.1"
    assert derive.columns(with_fields(bare, version="v 7", seed=99))["seed"] == "99"


def test_a_describes_prompts_are_its_answer_not_its_parameters():
    item = {
        "id": "1",
        "action": "DESCRIBE",
        "prompt": "1️⃣ a cat --ar 1:1\n\n2️⃣ a dog --ar 4:3",
        "promptEn": "1️⃣ a cat --ar 1:1",
        "properties": {"finalPrompt": "1️⃣ a cat --ar 1:1 --v 6"},
    }
    assert parameters(item) == EMPTY


def test_a_shortens_final_prompt_is_its_analysis_but_its_prompt_counts():
    item = {
        "id": "1",
        "action": "SHORTEN",
        "prompt": "黄昏时的灯塔 --ar 16:9",
        "properties": {"finalPrompt": "**IMPORTANT TOKENS** ... 1️⃣ dusk --ar 1:1 --v 5"},
    }
    columns = derive.columns(item)
    assert (columns["aspect"], columns["version"]) == ("16:9", "")


def test_the_real_bot_wins_over_the_bot_asked_for():
    item = with_fields(TRUEAI_IMAGINE, botType="NIJI_JOURNEY", realBotType="MID_JOURNEY")
    assert derive.columns(item)["bot"] == "MID_JOURNEY"
    item = {"id": "1", "properties": {"botType": "niji_journey"}}
    assert derive.columns(item)["bot"] == "NIJI_JOURNEY"


def test_the_account_is_the_instance_when_properties_do_not_name_it():
    item = with_fields(TRUEAI_IMAGINE, properties={}, instanceId=1300000000000000002)
    assert derive.columns(item)["account"] == "1300000000000000002"


def test_the_caller_is_the_user_then_new_apis_user_id_then_the_state():
    assert derive.columns({"id": "1", "userId": "u1", "user_id": 3, "state": "s"})["caller"] == "u1"
    assert derive.columns({"id": "1", "userId": None, "user_id": 3, "state": "s"})["caller"] == "3"
    assert derive.columns({"id": "1", "userId": "", "user_id": 0, "state": " s "})["caller"] == (
        "0"  # new-api's user 0 is still a user id
    )
    assert derive.columns({"id": "1", "userId": None, "state": " tag "})["caller"] == "tag"


@pytest.mark.parametrize(
    "description, parent",
    [
        ("/up 1700000000000001 U1", "1700000000000001"),
        ("/up 1700000000000001 V2", "1700000000000001"),
        ("/variation 1700000000000001 2", "1700000000000001"),
        ("/imagine /up 1700000000000001 U1", ""),
        ("/up 1700000000000009 U1", ""),  # its own id
        ("/describe 1700000000000001.png", ""),
    ],
)
def test_the_parent_is_the_id_a_follow_up_command_names(description, parent):
    item = {"id": "1700000000000009", "description": description}
    assert derive.columns(item)["parent_task_id"] == parent


def test_parent_id_wins_over_the_description():
    item = {"id": "2", "parentId": "1754380000000001", "description": "/up 1700000000000001 U1"}
    assert derive.columns(item)["parent_task_id"] == "1754380000000001"


@pytest.mark.parametrize(
    "fields",
    [
        {"mode": ["FAST"], "requestMode": {"a": 1}, "userId": True, "state": 1.5},
        {"botType": "mid journey", "realBotType": 7, "instanceId": "a b"},
        {"properties": "not an object", "parentId": "../../etc"},
        {"properties": {"discordInstanceId": None, "messageContent": 12}},
        {"prompt": ["--v 6"], "promptEn": None, "version": "vv 7", "seed": "-1"},
        {"userId": 10**80, "version": "niji six", "mode": "slow"},
    ],
)
def test_values_of_the_wrong_kind_leave_their_columns_empty(fields):
    assert parameters({"id": "1", **fields}) == EMPTY


@pytest.mark.parametrize("item", [None, [], "text", 3, {}, {"id": None}])
def test_a_record_that_is_no_object_gives_empty_columns(item):
    assert parameters(item) == EMPTY


def test_long_values_are_cut_to_their_columns_and_unstorable_characters_replaced():
    item = {"id": "1", "userId": "a\x00b\ud800" + "x" * 5000, "instanceId": "9" * 65}
    columns = derive.columns(item)
    assert columns["caller"] == "a\ufffdb\ufffd" + "x" * 196
    assert columns["account"] == ""  # longer than any channel id: not one
    huge = "cat " * 500_000 + "--ar 16:9 --v 6 " + "--" * 100_000
    assert derive.columns({"id": "1", "prompt": huge})["aspect"] == "16:9"


def test_the_record_rules_store_what_derive_gives():
    record = normalise(TRUEAI_IMAGINE)
    assert record.derived["version"] == "7"
    assert record.derived["caller"] == "user"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["mode", "requestMode", "version", "seed", "botType", "realBotType", "instanceId", "userId"]
    + ["user_id", "state", "parentId", "description", "prompt", "promptEn", "action", "id"]
    + ["properties"]
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(KEYS, JSON_VALUES | st.text(alphabet="-v:0123456789 niji ar", max_size=40)))
def test_any_json_gives_columns_that_fit_and_never_raises(item):
    columns = derive.columns(item)
    for name, size in derive.SIZES.items():
        assert isinstance(columns[name], str) and len(columns[name]) <= size
    assert columns["mode"] in ("", *derive.MODES)
    assert columns["request_mode"] in ("", *derive.MODES)
