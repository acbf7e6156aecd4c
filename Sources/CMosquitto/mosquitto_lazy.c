// Every function of libmosquitto's mosquitto.h (2.0.11, Debian bookworm; variadic ones left out), resolved from
// libmosquitto.so.1 on first use (see CEarshotLazy.h), so the `mqtt` sink may call any of them. The list was
// generated from the header: for each `libmosq_EXPORT <type> <name>(<parameters>);`, the return type, name,
// parameters and the parameter names as arguments.
#include <CMosquitto.h>
#include "../CEarshotSupport/CEarshotLazy.h"

#define MOSQUITTO_FUNCTIONS(XR, XV) \
    XR(int, mosquitto_lib_version, (int *major, int *minor, int *revision), (major, minor, revision)) \
    XR(int, mosquitto_lib_init, (void), ()) \
    XR(int, mosquitto_lib_cleanup, (void), ()) \
    XR(struct mosquitto *, mosquitto_new, (const char *id, bool clean_session, void *obj), (id, clean_session, obj)) \
    XV(void, mosquitto_destroy, (struct mosquitto *mosq), (mosq)) \
    XR(int, mosquitto_reinitialise, (struct mosquitto *mosq, const char *id, bool clean_session, void *obj), (mosq, id, clean_session, obj)) \
    XR(int, mosquitto_will_set, (struct mosquitto *mosq, const char *topic, int payloadlen, const void *payload, int qos, bool retain), (mosq, topic, payloadlen, payload, qos, retain)) \
    XR(int, mosquitto_will_set_v5, (struct mosquitto *mosq, const char *topic, int payloadlen, const void *payload, int qos, bool retain, mosquitto_property *properties), (mosq, topic, payloadlen, payload, qos, retain, properties)) \
    XR(int, mosquitto_will_clear, (struct mosquitto *mosq), (mosq)) \
    XR(int, mosquitto_username_pw_set, (struct mosquitto *mosq, const char *username, const char *password), (mosq, username, password)) \
    XR(int, mosquitto_connect, (struct mosquitto *mosq, const char *host, int port, int keepalive), (mosq, host, port, keepalive)) \
    XR(int, mosquitto_connect_bind, (struct mosquitto *mosq, const char *host, int port, int keepalive, const char *bind_address), (mosq, host, port, keepalive, bind_address)) \
    XR(int, mosquitto_connect_bind_v5, (struct mosquitto *mosq, const char *host, int port, int keepalive, const char *bind_address, const mosquitto_property *properties), (mosq, host, port, keepalive, bind_address, properties)) \
    XR(int, mosquitto_connect_async, (struct mosquitto *mosq, const char *host, int port, int keepalive), (mosq, host, port, keepalive)) \
    XR(int, mosquitto_connect_bind_async, (struct mosquitto *mosq, const char *host, int port, int keepalive, const char *bind_address), (mosq, host, port, keepalive, bind_address)) \
    XR(int, mosquitto_connect_srv, (struct mosquitto *mosq, const char *host, int keepalive, const char *bind_address), (mosq, host, keepalive, bind_address)) \
    XR(int, mosquitto_reconnect, (struct mosquitto *mosq), (mosq)) \
    XR(int, mosquitto_reconnect_async, (struct mosquitto *mosq), (mosq)) \
    XR(int, mosquitto_disconnect, (struct mosquitto *mosq), (mosq)) \
    XR(int, mosquitto_disconnect_v5, (struct mosquitto *mosq, int reason_code, const mosquitto_property *properties), (mosq, reason_code, properties)) \
    XR(int, mosquitto_publish, (struct mosquitto *mosq, int *mid, const char *topic, int payloadlen, const void *payload, int qos, bool retain), (mosq, mid, topic, payloadlen, payload, qos, retain)) \
    XR(int, mosquitto_publish_v5, (struct mosquitto *mosq, int *mid, const char *topic, int payloadlen, const void *payload, int qos, bool retain, const mosquitto_property *properties), (mosq, mid, topic, payloadlen, payload, qos, retain, properties)) \
    XR(int, mosquitto_subscribe, (struct mosquitto *mosq, int *mid, const char *sub, int qos), (mosq, mid, sub, qos)) \
    XR(int, mosquitto_subscribe_v5, (struct mosquitto *mosq, int *mid, const char *sub, int qos, int options, const mosquitto_property *properties), (mosq, mid, sub, qos, options, properties)) \
    XR(int, mosquitto_subscribe_multiple, (struct mosquitto *mosq, int *mid, int sub_count, char *const *const sub, int qos, int options, const mosquitto_property *properties), (mosq, mid, sub_count, sub, qos, options, properties)) \
    XR(int, mosquitto_unsubscribe, (struct mosquitto *mosq, int *mid, const char *sub), (mosq, mid, sub)) \
    XR(int, mosquitto_unsubscribe_v5, (struct mosquitto *mosq, int *mid, const char *sub, const mosquitto_property *properties), (mosq, mid, sub, properties)) \
    XR(int, mosquitto_unsubscribe_multiple, (struct mosquitto *mosq, int *mid, int sub_count, char *const *const sub, const mosquitto_property *properties), (mosq, mid, sub_count, sub, properties)) \
    XR(int, mosquitto_message_copy, (struct mosquitto_message *dst, const struct mosquitto_message *src), (dst, src)) \
    XV(void, mosquitto_message_free, (struct mosquitto_message **message), (message)) \
    XV(void, mosquitto_message_free_contents, (struct mosquitto_message *message), (message)) \
    XR(int, mosquitto_loop_forever, (struct mosquitto *mosq, int timeout, int max_packets), (mosq, timeout, max_packets)) \
    XR(int, mosquitto_loop_start, (struct mosquitto *mosq), (mosq)) \
    XR(int, mosquitto_loop_stop, (struct mosquitto *mosq, bool force), (mosq, force)) \
    XR(int, mosquitto_loop, (struct mosquitto *mosq, int timeout, int max_packets), (mosq, timeout, max_packets)) \
    XR(int, mosquitto_loop_read, (struct mosquitto *mosq, int max_packets), (mosq, max_packets)) \
    XR(int, mosquitto_loop_write, (struct mosquitto *mosq, int max_packets), (mosq, max_packets)) \
    XR(int, mosquitto_loop_misc, (struct mosquitto *mosq), (mosq)) \
    XR(int, mosquitto_socket, (struct mosquitto *mosq), (mosq)) \
    XR(bool, mosquitto_want_write, (struct mosquitto *mosq), (mosq)) \
    XR(int, mosquitto_threaded_set, (struct mosquitto *mosq, bool threaded), (mosq, threaded)) \
    XR(int, mosquitto_opts_set, (struct mosquitto *mosq, enum mosq_opt_t option, void *value), (mosq, option, value)) \
    XR(int, mosquitto_int_option, (struct mosquitto *mosq, enum mosq_opt_t option, int value), (mosq, option, value)) \
    XR(int, mosquitto_string_option, (struct mosquitto *mosq, enum mosq_opt_t option, const char *value), (mosq, option, value)) \
    XR(int, mosquitto_void_option, (struct mosquitto *mosq, enum mosq_opt_t option, void *value), (mosq, option, value)) \
    XR(int, mosquitto_reconnect_delay_set, (struct mosquitto *mosq, unsigned int reconnect_delay, unsigned int reconnect_delay_max, bool reconnect_exponential_backoff), (mosq, reconnect_delay, reconnect_delay_max, reconnect_exponential_backoff)) \
    XR(int, mosquitto_max_inflight_messages_set, (struct mosquitto *mosq, unsigned int max_inflight_messages), (mosq, max_inflight_messages)) \
    XV(void, mosquitto_message_retry_set, (struct mosquitto *mosq, unsigned int message_retry), (mosq, message_retry)) \
    XV(void, mosquitto_user_data_set, (struct mosquitto *mosq, void *obj), (mosq, obj)) \
    XR(void *, mosquitto_userdata, (struct mosquitto *mosq), (mosq)) \
    XR(int, mosquitto_tls_set, (struct mosquitto *mosq, const char *cafile, const char *capath, const char *certfile, const char *keyfile, int (*pw_callback)(char *buf, int size, int rwflag, void *userdata)), (mosq, cafile, capath, certfile, keyfile, pw_callback)) \
    XR(int, mosquitto_tls_insecure_set, (struct mosquitto *mosq, bool value), (mosq, value)) \
    XR(int, mosquitto_tls_opts_set, (struct mosquitto *mosq, int cert_reqs, const char *tls_version, const char *ciphers), (mosq, cert_reqs, tls_version, ciphers)) \
    XR(int, mosquitto_tls_psk_set, (struct mosquitto *mosq, const char *psk, const char *identity, const char *ciphers), (mosq, psk, identity, ciphers)) \
    XR(void *, mosquitto_ssl_get, (struct mosquitto *mosq), (mosq)) \
    XV(void, mosquitto_connect_callback_set, (struct mosquitto *mosq, void (*on_connect)(struct mosquitto *, void *, int)), (mosq, on_connect)) \
    XV(void, mosquitto_connect_with_flags_callback_set, (struct mosquitto *mosq, void (*on_connect)(struct mosquitto *, void *, int, int)), (mosq, on_connect)) \
    XV(void, mosquitto_connect_v5_callback_set, (struct mosquitto *mosq, void (*on_connect)(struct mosquitto *, void *, int, int, const mosquitto_property *props)), (mosq, on_connect)) \
    XV(void, mosquitto_disconnect_callback_set, (struct mosquitto *mosq, void (*on_disconnect)(struct mosquitto *, void *, int)), (mosq, on_disconnect)) \
    XV(void, mosquitto_disconnect_v5_callback_set, (struct mosquitto *mosq, void (*on_disconnect)(struct mosquitto *, void *, int, const mosquitto_property *props)), (mosq, on_disconnect)) \
    XV(void, mosquitto_publish_callback_set, (struct mosquitto *mosq, void (*on_publish)(struct mosquitto *, void *, int)), (mosq, on_publish)) \
    XV(void, mosquitto_publish_v5_callback_set, (struct mosquitto *mosq, void (*on_publish)(struct mosquitto *, void *, int, int, const mosquitto_property *props)), (mosq, on_publish)) \
    XV(void, mosquitto_message_callback_set, (struct mosquitto *mosq, void (*on_message)(struct mosquitto *, void *, const struct mosquitto_message *)), (mosq, on_message)) \
    XV(void, mosquitto_message_v5_callback_set, (struct mosquitto *mosq, void (*on_message)(struct mosquitto *, void *, const struct mosquitto_message *, const mosquitto_property *props)), (mosq, on_message)) \
    XV(void, mosquitto_subscribe_callback_set, (struct mosquitto *mosq, void (*on_subscribe)(struct mosquitto *, void *, int, int, const int *)), (mosq, on_subscribe)) \
    XV(void, mosquitto_subscribe_v5_callback_set, (struct mosquitto *mosq, void (*on_subscribe)(struct mosquitto *, void *, int, int, const int *, const mosquitto_property *props)), (mosq, on_subscribe)) \
    XV(void, mosquitto_unsubscribe_callback_set, (struct mosquitto *mosq, void (*on_unsubscribe)(struct mosquitto *, void *, int)), (mosq, on_unsubscribe)) \
    XV(void, mosquitto_unsubscribe_v5_callback_set, (struct mosquitto *mosq, void (*on_unsubscribe)(struct mosquitto *, void *, int, const mosquitto_property *props)), (mosq, on_unsubscribe)) \
    XV(void, mosquitto_log_callback_set, (struct mosquitto *mosq, void (*on_log)(struct mosquitto *, void *, int, const char *)), (mosq, on_log)) \
    XR(int, mosquitto_socks5_set, (struct mosquitto *mosq, const char *host, int port, const char *username, const char *password), (mosq, host, port, username, password)) \
    XR(const char *, mosquitto_strerror, (int mosq_errno), (mosq_errno)) \
    XR(const char *, mosquitto_connack_string, (int connack_code), (connack_code)) \
    XR(const char *, mosquitto_reason_string, (int reason_code), (reason_code)) \
    XR(int, mosquitto_string_to_command, (const char *str, int *cmd), (str, cmd)) \
    XR(int, mosquitto_sub_topic_tokenise, (const char *subtopic, char ***topics, int *count), (subtopic, topics, count)) \
    XR(int, mosquitto_sub_topic_tokens_free, (char ***topics, int count), (topics, count)) \
    XR(int, mosquitto_topic_matches_sub, (const char *sub, const char *topic, bool *result), (sub, topic, result)) \
    XR(int, mosquitto_topic_matches_sub2, (const char *sub, size_t sublen, const char *topic, size_t topiclen, bool *result), (sub, sublen, topic, topiclen, result)) \
    XR(int, mosquitto_pub_topic_check, (const char *topic), (topic)) \
    XR(int, mosquitto_pub_topic_check2, (const char *topic, size_t topiclen), (topic, topiclen)) \
    XR(int, mosquitto_sub_topic_check, (const char *topic), (topic)) \
    XR(int, mosquitto_sub_topic_check2, (const char *topic, size_t topiclen), (topic, topiclen)) \
    XR(int, mosquitto_validate_utf8, (const char *str, int len), (str, len)) \
    XR(int, mosquitto_subscribe_simple, (struct mosquitto_message **messages, int msg_count, bool want_retained, const char *topic, int qos, const char *host, int port, const char *client_id, int keepalive, bool clean_session, const char *username, const char *password, const struct libmosquitto_will *will, const struct libmosquitto_tls *tls), (messages, msg_count, want_retained, topic, qos, host, port, client_id, keepalive, clean_session, username, password, will, tls)) \
    XR(int, mosquitto_subscribe_callback, (int (*callback)(struct mosquitto *, void *, const struct mosquitto_message *), void *userdata, const char *topic, int qos, const char *host, int port, const char *client_id, int keepalive, bool clean_session, const char *username, const char *password, const struct libmosquitto_will *will, const struct libmosquitto_tls *tls), (callback, userdata, topic, qos, host, port, client_id, keepalive, clean_session, username, password, will, tls)) \
    XR(int, mosquitto_property_add_byte, (mosquitto_property **proplist, int identifier, uint8_t value), (proplist, identifier, value)) \
    XR(int, mosquitto_property_add_int16, (mosquitto_property **proplist, int identifier, uint16_t value), (proplist, identifier, value)) \
    XR(int, mosquitto_property_add_int32, (mosquitto_property **proplist, int identifier, uint32_t value), (proplist, identifier, value)) \
    XR(int, mosquitto_property_add_varint, (mosquitto_property **proplist, int identifier, uint32_t value), (proplist, identifier, value)) \
    XR(int, mosquitto_property_add_binary, (mosquitto_property **proplist, int identifier, const void *value, uint16_t len), (proplist, identifier, value, len)) \
    XR(int, mosquitto_property_add_string, (mosquitto_property **proplist, int identifier, const char *value), (proplist, identifier, value)) \
    XR(int, mosquitto_property_add_string_pair, (mosquitto_property **proplist, int identifier, const char *name, const char *value), (proplist, identifier, name, value)) \
    XR(int, mosquitto_property_identifier, (const mosquitto_property *property), (property)) \
    XR(const mosquitto_property *, mosquitto_property_next, (const mosquitto_property *proplist), (proplist)) \
    XR(const mosquitto_property *, mosquitto_property_read_byte, (const mosquitto_property *proplist, int identifier, uint8_t *value, bool skip_first), (proplist, identifier, value, skip_first)) \
    XR(const mosquitto_property *, mosquitto_property_read_int16, (const mosquitto_property *proplist, int identifier, uint16_t *value, bool skip_first), (proplist, identifier, value, skip_first)) \
    XR(const mosquitto_property *, mosquitto_property_read_int32, (const mosquitto_property *proplist, int identifier, uint32_t *value, bool skip_first), (proplist, identifier, value, skip_first)) \
    XR(const mosquitto_property *, mosquitto_property_read_varint, (const mosquitto_property *proplist, int identifier, uint32_t *value, bool skip_first), (proplist, identifier, value, skip_first)) \
    XR(const mosquitto_property *, mosquitto_property_read_binary, (const mosquitto_property *proplist, int identifier, void **value, uint16_t *len, bool skip_first), (proplist, identifier, value, len, skip_first)) \
    XR(const mosquitto_property *, mosquitto_property_read_string, (const mosquitto_property *proplist, int identifier, char **value, bool skip_first), (proplist, identifier, value, skip_first)) \
    XR(const mosquitto_property *, mosquitto_property_read_string_pair, (const mosquitto_property *proplist, int identifier, char **name, char **value, bool skip_first), (proplist, identifier, name, value, skip_first)) \
    XV(void, mosquitto_property_free_all, (mosquitto_property **properties), (properties)) \
    XR(int, mosquitto_property_copy_all, (mosquitto_property **dest, const mosquitto_property *src), (dest, src)) \
    XR(int, mosquitto_property_check_command, (int command, int identifier), (command, identifier)) \
    XR(int, mosquitto_property_check_all, (int command, const mosquitto_property *properties), (command, properties)) \
    XR(const char *, mosquitto_property_identifier_to_string, (int identifier), (identifier)) \
    XR(int, mosquitto_string_to_property_info, (const char *propname, int *identifier, int *type), (propname, identifier, type)) \

CEARSHOT_LAZY_LIBRARY(MOSQUITTO_FUNCTIONS, "libmosquitto.so.1", "libmosquitto1", "the mqtt sink")

int CEarshot_mosquitto_load(void) { return CEarshot_lazy_load(&lazy_lib); }
const char *CEarshot_mosquitto_error(void) { return CEarshot_lazy_error(&lazy_lib); }
