/* End-to-end tests of `tracemark generate --chat`: the error for a model
 * without a chat template, an explicit --chat-template, a template
 * recognised from a GGUF's tokenizer.chat_template, one that is recognised
 * but not built in, and a generation that ends at an end-of-generation token
 * other than EOS. The models are ../shared's stories260K (which has no chat
 * template) and copies of stories260K.gguf written here with a template
 * added or one vocabulary entry renamed. Expected prompt ids are llama.cpp's
 * (libllama of node-llama-cpp 3.21.1, llama_tokenize with add_special and
 * parse_special on stories260K.gguf, whose vocabulary is tok512's). */
#include <criterion/criterion.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../model/gguf_writer.h"
#include "fixtures.h"

static json_t *parse_json(const char *text) {
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    cr_assert_not_null(root, "not JSON (%s): %s", jerr.text, text);
    return root;
}

static void expect_ids(json_t *array, const int32_t *want, size_t n_want, const char *what) {
    cr_assert(json_is_array(array), "%s is not an array", what);
    cr_expect_eq(json_array_size(array), n_want, "%s: %zu ids, expected %zu", what, json_array_size(array), n_want);
    for (size_t i = 0; i < n_want && i < json_array_size(array); i++)
        cr_expect_eq(json_integer_value(json_array_get(array, i)), want[i], "%s[%zu]", what, i);
}

/* A copy of stories260K.gguf with tokenizer.chat_template set to jinja (when
 * not NULL) and vocabulary entry `rename` (when >= 0) renamed to new_piece. */
static char *copy_story_gguf(const char *dir, const char *name, const char *jinja, int64_t rename,
                             const char *new_piece) {
    char *source = tm_fixture("models/stories260K.gguf");
    char *path = tm_test_path(dir, name);
    tm_error err = {0};
    tm_gguf *gguf = NULL;
    tm_gguf_writer *w = NULL;
    cr_assert_eq(tm_gguf_open(&gguf, source, &err), TM_OK, "%s", err.message);
    cr_assert_eq(tm_gguf_writer_create(&w, path, (uint32_t)tm_gguf_alignment(gguf), &err), TM_OK, "%s",
                 err.message);
    cr_assert_eq(tm_gguf_writer_copy_metadata(w, gguf, NULL, NULL, &err), TM_OK, "%s", err.message);
    if (jinja) cr_assert_eq(tm_gguf_writer_set_string(w, "tokenizer.chat_template", jinja, &err), TM_OK);
    if (rename >= 0) {
        const tm_gguf_value *tokens = tm_gguf_find(gguf, "tokenizer.ggml.tokens");
        cr_assert(tokens && (uint64_t)rename < tokens->as.array.count);
        tm_gguf_value copy = *tokens;
        copy.as.array.items = malloc(tokens->as.array.count * sizeof *copy.as.array.items);
        memcpy(copy.as.array.items, tokens->as.array.items, tokens->as.array.count * sizeof *copy.as.array.items);
        copy.as.array.items[rename].as.string = (tm_string_view){new_piece, strlen(new_piece)};
        cr_assert_eq(tm_gguf_writer_set_value(w, "tokenizer.ggml.tokens", &copy, &err), TM_OK, "%s", err.message);
        free(copy.as.array.items);
    }
    for (uint64_t i = 0; i < tm_gguf_tensor_count(gguf); i++) {
        const tm_gguf_tensor *t = tm_gguf_tensor_at(gguf, i);
        char tensor_name[TM_GGUF_MAX_TENSOR_NAME];
        cr_assert_lt(t->name.size, sizeof tensor_name);
        memcpy(tensor_name, t->name.data, t->name.size);
        tensor_name[t->name.size] = '\0';
        cr_assert_eq(tm_gguf_writer_add_tensor(w, tensor_name, t->type, t->n_dims, t->ne, &err), TM_OK, "%s",
                     err.message);
    }
    cr_assert_eq(tm_gguf_writer_begin_data(w, &err), TM_OK, "%s", err.message);
    for (uint64_t i = 0; i < tm_gguf_tensor_count(gguf); i++) {
        const tm_gguf_tensor *t = tm_gguf_tensor_at(gguf, i);
        cr_assert_eq(tm_gguf_writer_write(w, t->data, t->n_bytes, &err), TM_OK);
    }
    cr_assert_eq(tm_gguf_writer_finish(w, &err), TM_OK, "%s", err.message);
    tm_gguf_writer_free(w);
    tm_gguf_close(gguf);
    free(source);
    return path;
}

#define STORY_BIN "--model \"$TRACEMARK_FIXTURES/models/stories260K.bin\" --tokenizer \"$TRACEMARK_FIXTURES/models/tok512.bin\""

Test(chat_cli, a_model_without_a_template_needs_chat_template) {
    tm_test_cli_result r = tm_test_cli("generate " STORY_BIN " --chat --prompt Hi --max-tokens 4");
    cr_expect_eq(r.code, 1, "exit %d: %s", r.code, r.err);
    cr_expect_str_eq(r.out, "");
    cr_expect(strstr(r.err, "tracemark: error: ") && strstr(r.err, "stories260K.bin") &&
                  strstr(r.err, "no chat template") && strstr(r.err, "--chat-template") &&
                  strstr(r.err, "llama2-sys") && strstr(r.err, "zephyr"),
              "%s", r.err);
    tm_test_cli_free(&r);
}

Test(chat_cli, usage_errors) {
    tm_test_cli_result r = tm_test_cli("generate " STORY_BIN " --system Be --prompt Hi");
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "--system and --chat-template go with --chat"), "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("generate " STORY_BIN " --chat --chat-template jinja --prompt Hi");
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "unknown chat template 'jinja'") && strstr(r.err, "chatml"), "%s", r.err);
    tm_test_cli_free(&r);
    r = tm_test_cli("generate --help");
    cr_expect_eq(r.code, 0);
    cr_expect(strstr(r.out, "--chat ") && strstr(r.out, "--system TEXT") && strstr(r.out, "--chat-template NAME") &&
                  strstr(r.out, "Jinja"),
              "%s", r.out);
    tm_test_cli_free(&r);
}

Test(chat_cli, explicit_template_formats_and_parses_special_tokens) {
    tm_test_cli_result r = tm_test_cli("generate " STORY_BIN " --chat --chat-template llama2-sys --system 'Be kind.' "
                                       "--prompt 'Once upon a time' --temperature 0 --max-tokens 8 --json");
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    json_t *root = parse_json(r.out);
    cr_expect_str_eq(json_string_value(json_object_get(root, "prompt")),
                     "[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nOnce upon a time [/INST]");
    const int32_t want[] = {1,   410, 508, 442, 458, 437, 434, 509, 410, 504, 504, 437, 452, 437, 505, 505,
                            13,  445, 411, 409, 417, 264, 426, 13,  504, 504, 492, 437, 452, 437, 505, 505,
                            13,  13,  441, 416, 331, 407, 261, 378, 410, 508, 492, 442, 458, 437, 434, 509};
    expect_ids(json_object_get(root, "prompt_ids"), want, sizeof want / sizeof *want, "prompt_ids");
    json_t *chat = json_object_get(root, "chat");
    cr_expect_str_eq(json_string_value(json_object_get(chat, "template")), "llama2-sys");
    cr_expect_str_eq(json_string_value(json_object_get(chat, "system")), "Be kind.");
    cr_expect_str_eq(json_string_value(json_object_get(chat, "user")), "Once upon a time");
    json_decref(root);
    tm_test_cli_free(&r);

    /* <s> in the user's text becomes BOS under --chat --chat-special-tokens, as
     * in llama.cpp (1 ... 410 1 403 ...), for trusted input only... */
    r = tm_test_cli("generate " STORY_BIN " --chat --chat-special-tokens --chat-template llama2 "
                    "--prompt '<s>Once upon a time' --temperature 0 --max-tokens 1 --json");
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    root = parse_json(r.out);
    const int32_t parsed[] = {1, 410, 508, 442, 458, 437, 434, 509, 410, 1, 403, 407, 261, 378,
                              410, 508, 492, 442, 458, 437, 434, 509};
    expect_ids(json_object_get(root, "prompt_ids"), parsed, sizeof parsed / sizeof *parsed, "prompt_ids");
    json_decref(root);
    tm_test_cli_free(&r);

    /* ...and stays text by default (issue 17: a message cannot forge control
     * tokens): the ids are the plain encoder's of the formatted prompt, one BOS. */
    r = tm_test_cli("generate " STORY_BIN " --chat --chat-template llama2 --prompt '<s>Once upon a time' "
                    "--temperature 0 --max-tokens 1 --json");
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    root = parse_json(r.out);
    {
        const char *prompt = json_string_value(json_object_get(root, "prompt"));
        cr_assert_str_eq(prompt, "[INST] <s>Once upon a time [/INST]");
        char *tok_path = tm_fixture("models/tok512.bin");
        tm_tokenizer *tok = NULL;
        tm_error err = {0};
        cr_assert_eq(tm_tokenizer_load(&tok, tok_path, &err), TM_OK, "%s", err.message);
        int32_t *ids = NULL;
        size_t n = 0;
        cr_assert_eq(tm_tokenizer_encode(tok, prompt, strlen(prompt), true, &ids, &n, &err), TM_OK, "%s", err.message);
        expect_ids(json_object_get(root, "prompt_ids"), ids, n, "prompt_ids (plain)");
        free(ids);
        tm_tokenizer_free(tok);
        free(tok_path);
    }
    json_decref(root);
    tm_test_cli_free(&r);

    /* ...and stays text without --chat (llama.cpp with parse_special off) */
    r = tm_test_cli("generate " STORY_BIN " --prompt '<s>Once upon a time</s>' --temperature 0 --max-tokens 1 --json");
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    root = parse_json(r.out);
    const int32_t plain[] = {1, 410, 504, 419, 505, 441, 416, 331, 407, 261, 378, 504, 492, 419, 505};
    expect_ids(json_object_get(root, "prompt_ids"), plain, sizeof plain / sizeof *plain, "prompt_ids");
    cr_expect_str_eq(json_string_value(json_object_get(root, "prompt")), "<s>Once upon a time</s>");
    cr_expect_null(json_object_get(root, "chat"));
    json_decref(root);
    tm_test_cli_free(&r);
}

Test(chat_cli, streamed_output_starts_with_the_formatted_prompt) {
    tm_test_cli_result r = tm_test_cli("generate " STORY_BIN " --chat --chat-template chatml --prompt Hi "
                                       "--temperature 0 --max-tokens 4");
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    const char *head = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
    cr_expect_eq(strncmp(r.out, head, strlen(head)), 0, "%s", r.out);
    cr_expect_gt(strlen(r.out), strlen(head));
    tm_test_cli_free(&r);
}

/* OpenHermes' template, from llama.cpp's tests/test-chat-template.cpp. */
static const char CHATML_JINJA[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

Test(chat_cli, template_from_the_gguf) {
    char *dir = tm_test_scratch_dir();
    char *model = copy_story_gguf(dir, "chatml.gguf", CHATML_JINJA, -1, NULL);
    tm_test_cli_result r = tm_test_cli("generate --model '%s' --chat --prompt 'Once upon a time' --temperature 0 "
                                       "--max-tokens 4 --json", model);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    json_t *root = parse_json(r.out);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(root, "chat"), "template")), "chatml");
    cr_expect_str_eq(json_string_value(json_object_get(root, "prompt")),
                     "<|im_start|>user\nOnce upon a time<|im_end|>\n<|im_start|>assistant\n");
    const int32_t want[] = {1,   410, 504, 506, 288, 98,  356, 295, 413, 506, 505, 425, 419, 285, 13,  441,
                            416, 331, 407, 261, 378, 504, 506, 288, 98,  367, 506, 505, 13,  504, 506, 288,
                            98,  356, 295, 413, 506, 505, 412, 419, 419, 293, 413, 303, 413, 13};
    expect_ids(json_object_get(root, "prompt_ids"), want, sizeof want / sizeof *want, "prompt_ids");
    json_decref(root);
    tm_test_cli_free(&r);
    /* --chat-template still wins over the file's */
    r = tm_test_cli("generate --model '%s' --chat --chat-template zephyr --prompt Hi --max-tokens 1 --json", model);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    root = parse_json(r.out);
    cr_expect_str_eq(json_string_value(json_object_get(root, "prompt")), "<|user|>\nHi</s>\n<|assistant|>\n");
    json_decref(root);
    tm_test_cli_free(&r);
    remove(model);
    free(model);

    /* ChatGLM4's marker: recognised, not built in */
    model = copy_story_gguf(dir, "glm.gguf", "[gMASK]<sop>{% for item in messages %}{{ item['content'] }}{% endfor %}",
                            -1, NULL);
    r = tm_test_cli("generate --model '%s' --chat --prompt Hi --max-tokens 1", model);
    cr_expect_eq(r.code, 1);
    cr_expect(strstr(r.err, "glm.gguf") && strstr(r.err, "looks like llama.cpp's \"chatglm4\"") &&
                  strstr(r.err, "--chat-template") && strstr(r.err, "Jinja templates are not run"),
              "%s", r.err);
    tm_test_cli_free(&r);
    remove(model);
    free(model);
    rmdir(dir);
    free(dir);
}

Test(chat_cli, generation_stops_at_end_of_generation_tokens) {
    /* Greedy "Once upon a time" on stories260K.gguf starts with id 432 (","),
     * as llama.cpp's reference says. Renamed to <|eot_id|>, that token ends
     * the generation before anything is emitted. */
    char *dir = tm_test_scratch_dir();
    char *model = copy_story_gguf(dir, "eot.gguf", NULL, 432, "<|eot_id|>");
    tm_test_cli_result r = tm_test_cli("generate --model '%s' --prompt 'Once upon a time' --temperature 0 "
                                       "--max-tokens 16 --json", model);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    json_t *root = parse_json(r.out);
    cr_expect_str_eq(json_string_value(json_object_get(root, "stop_reason")), "end_of_generation");
    cr_expect_eq(json_array_size(json_object_get(root, "ids")), 0);
    cr_expect_str_eq(json_string_value(json_object_get(root, "text")), "");
    json_decref(root);
    tm_test_cli_free(&r);
    remove(model);
    free(model);

    /* The untouched model goes on past it. */
    r = tm_test_cli("generate --model \"$TRACEMARK_FIXTURES/models/stories260K.gguf\" --prompt 'Once upon a time' "
                    "--temperature 0 --max-tokens 16 --json");
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    root = parse_json(r.out);
    cr_expect_str_eq(json_string_value(json_object_get(root, "stop_reason")), "max_tokens");
    cr_expect_eq(json_integer_value(json_array_get(json_object_get(root, "ids"), 0)), 432);
    json_decref(root);
    tm_test_cli_free(&r);
    rmdir(dir);
    free(dir);
}

/* `tokenize --special` parses control-token texts as a chat prompt is parsed
 * (ids as llama.cpp's llama_tokenize with parse_special gives them on the
 * Llama 3 vocabulary; see test_tokenizer.c); without it they are plain text,
 * and BOS follows the vocabulary unless --no-bos. */
Test(chat_cli, tokenize_special_parses_control_tokens) {
    const char *text = "'<|start_header_id|>user<|end_header_id|>'";
    const char *vocab = "--tokenizer \"$TRACEMARK_FIXTURES/tokenizer-tests/ggml-vocab-llama-bpe.gguf\"";
    tm_test_cli_result r = tm_test_cli("tokenize %s --special %s", vocab, text);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_expect_str_eq(r.out, "128000 128006 882 128007\n");
    tm_test_cli_free(&r);
    r = tm_test_cli("tokenize %s --no-bos --special %s", vocab, text);
    cr_expect_str_eq(r.out, "128006 882 128007\n");
    tm_test_cli_free(&r);
    r = tm_test_cli("tokenize %s --no-bos %s", vocab, text);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_expect(strncmp(r.out, "128006", 6) != 0 && !strstr(r.out, " 128007"), "control texts stay text: %s", r.out);
    tm_test_cli_free(&r);
}

/* --messages: a conversation as chat APIs send it, formatted in order with
 * the generation prompt after it (chatml's layout, as in llama.cpp's
 * test-chat-template.cpp), --prompt appended as the last user message. */
Test(chat_cli, messages_file_is_the_conversation) {
    char *dir = tm_test_scratch_dir();
    char *path = tm_test_path(dir, "conversation.json");
    const char conversation[] = "[{\"role\": \"system\", \"content\": \"Be brief.\"},"
                                " {\"role\": \"user\", \"content\": \"Hello\"},"
                                " {\"role\": \"assistant\", \"content\": \"Hi there\"}]";
    cr_assert_eq(tm_test_write_file(path, conversation, sizeof conversation - 1), 0);
    tm_test_cli_result r = tm_test_cli("generate " STORY_BIN " --messages '%s' --chat-template chatml --prompt 'Who are you' "
                                       "--temperature 0 --max-tokens 2 --json", path);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    json_t *root = parse_json(r.out);
    cr_expect_str_eq(json_string_value(json_object_get(root, "prompt")),
                     "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                     "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
                     "<|im_start|>assistant\n");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(root, "chat"), "messages")), 4);
    json_decref(root);
    tm_test_cli_free(&r);

    /* Without --prompt the conversation alone is formatted. */
    r = tm_test_cli("generate " STORY_BIN " --messages '%s' --chat-template chatml --temperature 0 --max-tokens 1 --json",
                    path);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    root = parse_json(r.out);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(root, "chat"), "messages")), 3);
    json_decref(root);
    tm_test_cli_free(&r);

    /* Malformed conversations are refused with the file's name; --system belongs inside. */
    static const char *const bad[] = {"{\"role\": \"user\"}", "[]", "[{\"role\": \"user\"}]",
                                      "[{\"role\": \"\", \"content\": \"x\"}]",
                                      "[{\"role\": \"user\", \"content\": \"a\\u0000b\"}]", "[{\"role\": \"user\","};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(tm_test_write_file(path, bad[i], strlen(bad[i])), 0);
        r = tm_test_cli("generate " STORY_BIN " --messages '%s' --chat-template chatml --max-tokens 1", path);
        cr_expect_eq(r.code, 1, "%s: exit %d", bad[i], r.code);
        cr_expect(strstr(r.err, "tracemark: error: ") && strstr(r.err, "conversation.json"), "%s: %s", bad[i], r.err);
        cr_expect_str_eq(r.out, "", "%s", bad[i]);
        tm_test_cli_free(&r);
    }
    r = tm_test_cli("generate " STORY_BIN " --messages '%s' --system S --chat-template chatml", path);
    cr_expect_eq(r.code, 2, "exit %d: %s", r.code, r.err);
    tm_test_cli_free(&r);
    remove(path);
    remove(dir);
    free(path);
    free(dir);
}
