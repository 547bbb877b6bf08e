"""Recipe loading, validation and placeholder rendering (upstream v1 semantics)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkdeploy.errors import ConfigError
from sparkdeploy.recipes import (
    RECIPES_DIR,
    command_argv,
    load_recipe,
    placeholder_values,
    render_command,
)

MINIMAL = """\
recipe_version: "1"
name: Tiny
container: vllm-node
command: |
  vllm serve org/model --port {port}
defaults:
  port: 8000
"""

# The seed's command (blog post 9/9, "The Solo Recipe") with its defaults substituted by hand.
SEED_COMMAND = (Path(__file__).parent / "golden" / "seed-command.txt").read_text()


def render(recipe, overrides=None, solo=True):
    values = placeholder_values(recipe, overrides or {}, solo=solo, source="test")
    return render_command(recipe, values, solo=solo)


def test_seed_recipe_loads_as_written():
    recipe = load_recipe("openai-gpt-oss-120b")
    assert recipe.container == "vllm-node-mxfp4"
    assert recipe.build_args == ("--exp-mxfp4",)
    assert recipe.extra_docker_args == (
        "-v", "/home/cluster/.cache/tiktoken_rs:/root/.cache/tiktoken_rs",
        "-v", "/home/cluster/.cache/ccache:/root/.cache/ccache",
    )
    assert recipe.env["TIKTOKEN_RS_CACHE_DIR"] == "/root/.cache/tiktoken_rs"


def test_seed_recipe_command_equals_seed_flag_for_flag():
    recipe = load_recipe("openai-gpt-oss-120b")
    assert command_argv(render(recipe), recipe.source) == SEED_COMMAND.split()


def test_recipe_lookup_by_path_and_name_without_extension(write_recipe):
    path = write_recipe(MINIMAL, "tiny.yaml")
    assert load_recipe(path).name == "Tiny"
    assert load_recipe(path.removesuffix(".yaml")).name == "Tiny"
    assert load_recipe(str(RECIPES_DIR / "qwen3-coder-30b-a3b")).solo_only


def test_unknown_recipe_name_lists_available_recipes():
    with pytest.raises(ConfigError) as error:
        load_recipe("gpt-oss-999b")
    message = str(error.value)
    assert "key 'recipe'" in message and "gpt-oss-999b" in message
    assert "openai-gpt-oss-120b" in message and "qwen3-coder-30b-a3b" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [unclosed\n", "line 2, column 1: YAML syntax error: expected ',' or ']'"),
        ("- a list\n", "a recipe must be a YAML mapping, got list"),
        (MINIMAL.replace('recipe_version: "1"\n', ""), "key 'recipe_version': required key is missing"),
        (MINIMAL.replace("container: vllm-node\n", ""), "key 'container': required key is missing"),
        (MINIMAL + "env: [A=1]\n", "key 'env': expected a mapping of environment variables, got a "
         "non-empty list"),
        (MINIMAL + "name: Again\n", "line 8, column 1: duplicate key 'name' with another value"),
        (MINIMAL + "? !!binary aGk=\n: 1\n", "a key must be a plain string"),
        (MINIMAL.replace("vllm-node", '""'), "key 'container': '' is not an image reference"),
        (MINIMAL.replace("vllm-node", "'vllm node;rm -rf /'"), "is not an image reference"),
        (MINIMAL.replace("vllm-node", "Vllm-Node"), "is not an image reference"),
        (MINIMAL + "  max_model_len: .inf\n", "key 'defaults.max_model_len': inf is not a finite number"),
        (MINIMAL + "solo_only: yes please\n", "key 'solo_only': expected true or false, got string"),
        (MINIMAL + "build_args: --exp-mxfp4\n", "key 'build_args': expected a list"),
        (MINIMAL + "env:\n  A: [1]\n", "key 'env.A': expected a string, number or boolean, got list"),
        (MINIMAL.replace('"1"', '"2"'), "key 'recipe_version': unsupported version '2'"),
        (MINIMAL + "solo_only: true\ncluster_only: true\n", "both solo_only and cluster_only"),
        (MINIMAL.replace("{port}", '{"a": 1}'), "write literal braces as {{ and }}"),
    ],
)
def test_bad_recipe_is_named_with_file_key_and_allowed_values(write_recipe, text, expected):
    path = write_recipe(text)
    with pytest.raises(ConfigError) as error:
        load_recipe(path)
    assert str(error.value).startswith(path)
    assert expected in str(error.value)


def test_unknown_placeholder_lists_the_available_ones(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL.replace("{port}", "{prot}")))
    with pytest.raises(ConfigError) as error:
        render(recipe)
    assert "unknown placeholder {prot}" in str(error.value)
    assert "allowed: port, tensor_parallel" in str(error.value)


def test_json_braces_with_placeholders_inside_render_like_str_format(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL.replace(
        "--port {port}",
        "--port {port} --speculative-config '{{\"method\":\"mtp\",\"num_speculative_tokens\":{n}}}'",
    ) + "  n: 2\n"))
    argv = command_argv(render(recipe), recipe.source)
    assert argv[-2:] == ["--speculative-config", '{"method":"mtp","num_speculative_tokens":2}']


def test_host_data_overrides_defaults_and_adds_new_keys(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL.replace("{port}", "{port} --max-num-seqs {seqs}")))
    assert render(recipe, {"port": 9000, "seqs": 4}).endswith("--port 9000 --max-num-seqs 4")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"port": "eighty"}, "key 'vllm_params.port': expected integer like the recipe default 8000"),
        ({"port": True}, "key 'vllm_params.port': expected integer"),
        ({"port": [8000]}, "key 'vllm_params.port': expected a string, number or boolean, got list"),
        ({"tensor_parallel": 2}, "key 'vllm_params.tensor_parallel': a solo host runs one GPU"),
    ],
)
def test_host_override_of_the_wrong_type_is_an_error(write_recipe, overrides, expected):
    recipe = load_recipe(write_recipe(MINIMAL))
    with pytest.raises(ConfigError) as error:
        render(recipe, overrides)
    assert expected in str(error.value)


def test_a_float_default_accepts_an_integer_override(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL.replace("{port}", "{port} --gpu-memory-utilization "
                                                      "{gpu_memory_utilization}")
                                      + "  gpu_memory_utilization: 0.7\n"))
    values = placeholder_values(recipe, {"gpu_memory_utilization": 1}, solo=True, source="t")
    assert values["gpu_memory_utilization"] == 1


def test_solo_forces_tensor_parallel_one_and_strips_executor_backend(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL.replace(
        "--port {port}",
        "--port {port} \\\n  --tensor-parallel-size {tensor_parallel} \\\n"
        "  --distributed-executor-backend ray \\\n  --enforce-eager",
    ) + "  tensor_parallel: 2\n"))
    assert render(recipe) == ("vllm serve org/model --port 8000 --tensor-parallel-size 1 "
                              "--enforce-eager")
    assert "--distributed-executor-backend ray" in render(recipe, solo=False)


def test_bad_recipes_are_refused_with_the_file_and_never_a_traceback(write_recipe, tmp_path):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(MINIMAL.encode() + b"description: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1.yaml: line 8: not UTF-8 text \(byte 0xe9\)"):
        load_recipe(str(latin1))
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]\n"
        for prev, name in zip("abcdefgh", "bcdefghi", strict=True))
    with pytest.raises(ConfigError, match="more than 50 aliases"):
        load_recipe(write_recipe(MINIMAL + bomb))


def test_an_unknown_key_is_a_warning_with_a_near_miss_suggestion(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL + "build_arg: [--exp-mxfp4]\nnotes: tested on 2 Sparks\n"))
    assert recipe.build_args == ()
    assert len(recipe.warnings) == 2
    assert ("key 'build_arg' is not a recipe key and is ignored (did you mean 'build_args'?)"
            in recipe.warnings[0])
    assert recipe.warnings[1].endswith("key 'notes' is not a recipe key and is ignored")


def test_a_key_repeated_with_the_same_value_is_a_warning(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL + "container: vllm-node\n"))
    assert recipe.container == "vllm-node"
    assert recipe.warnings[0].endswith("line 8: key 'container' repeats the same value")


def test_an_empty_env_list_is_an_empty_environment(write_recipe):
    assert load_recipe(write_recipe(MINIMAL + "env: []\n")).env == {}


def test_a_comment_line_in_the_command_is_left_out_as_its_author_meant(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL.replace(
        "  vllm serve org/model --port {port}\n",
        "  vllm serve org/model \\\n    # --enforce-eager \\\n    --port {port} \\\n    #--last\n")))
    assert command_argv(render(recipe), recipe.source) == ["vllm", "serve", "org/model", "--port", "8000"]
    assert [warning.split(": ", 1)[1] for warning in recipe.warnings] == [
        "command line 2 is a comment and is left out (# --enforce-eager \\)",
        "command line 4 is a comment and is left out (#--last)"]


def test_a_backslash_followed_by_spaces_continues_the_line_with_a_warning(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL.replace(
        "  vllm serve org/model --port {port}\n",
        "  vllm serve org/model \\  \n    --port {port}\t\\\t\n    --enforce-eager\n")))
    assert command_argv(render(recipe), recipe.source) == [
        "vllm", "serve", "org/model", "--port", "8000", "--enforce-eager"]
    assert len(recipe.warnings) == 2 and "line 1 ends in a backslash followed by spaces" in recipe.warnings[0]


def test_crlf_line_ends_and_blank_lines_inside_the_command_are_whitespace(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL.replace(
        "  vllm serve org/model --port {port}\n", "  vllm serve org/model \\\r\n\n    --port {port}\n")))
    assert command_argv(render(recipe), recipe.source) == ["vllm", "serve", "org/model", "--port", "8000"]


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"max_model_lenn": 4096}, "key 'vllm_params.max_model_lenn': the command of"),
    ({"prot": 9000}, "has no placeholder {prot} (did you mean 'port'?) (allowed: port"),
    ({"port": 70000}, "'vllm_params.port': 70000 is out of range (allowed: a whole number from 1 to 65535)"),
    ({"port": -1}, "key 'vllm_params.port': -1 is out of range"),
])
def test_a_host_value_no_placeholder_uses_or_out_of_range_is_an_error(write_recipe, overrides, expected):
    recipe = load_recipe(write_recipe(MINIMAL))
    with pytest.raises(ConfigError) as error:
        render(recipe, overrides)
    assert expected in str(error.value)


def test_a_recipe_default_out_of_range_names_the_recipe(write_recipe):
    path = write_recipe(MINIMAL.replace("port: 8000", "port: 0"))
    with pytest.raises(ConfigError, match=r"recipe.yaml: key 'defaults.port': 0 is out of range"):
        render(load_recipe(path))


def test_a_non_positive_max_model_len_is_refused(write_recipe):
    recipe = load_recipe(write_recipe(MINIMAL.replace("{port}", "{port} --max-model-len {max_model_len}")
                                      + "  max_model_len: 4096\n"))
    with pytest.raises(ConfigError, match=r"key 'vllm_params\.max_model_len': 0 is out of range"):
        render(recipe, {"max_model_len": 0})
