use bytes::Bytes;

use super::*;
use crate::message::{Call, Event};
use crate::payload::Data;
use crate::value::Value;
use crate::{PublicationId, RequestId, SubscriptionId, Uri, dict};

fn call_with(args: Value) -> Message {
    Message::Call(Call {
        request: RequestId::new(1).expect("valid id"),
        options: dict! {},
        procedure: Uri::from("com.example.echo"),
        payload: crate::Payload { args: Some(Data::Decoded(args)), kwargs: None },
    })
}

#[test]
fn binary_values_survive_every_serializer_pair() {
    let blob = Value::Bytes(vec![0, 1, 2, 254, 255]);
    let original = call_with(Value::List(vec![blob.clone(), Value::from("text")]));
    for from in Serializer::ALL {
        let decoded = from.decode(&from.encode(&original).expect("encodes")).expect("decodes");
        for to in Serializer::ALL {
            let bytes = to.encode(&decoded).expect("transcodes");
            let Message::Call(call) = to.decode(&bytes).expect("decodes") else {
                panic!("not a CALL")
            };
            assert_eq!(
                call.payload.args_list().expect("list"),
                vec![blob.clone(), Value::from("text")],
                "{from:?} → {to:?}"
            );
        }
    }
}

#[test]
fn json_binary_uses_nul_plus_base64() {
    let bytes = Serializer::Json
        .encode(&call_with(Value::List(vec![Value::Bytes(b"hi".to_vec())])))
        .expect("encodes");
    assert_eq!(&bytes[..], br#"[48,1,{},"com.example.echo",["\u0000aGk="]]"#);
}

#[test]
fn payload_in_the_same_serializer_is_copied_byte_for_byte() {
    // A float written as 1.50 would be re-rendered as 1.5 if the router decoded the payload.
    let input = Bytes::from_static(br#"[36,1,2,{},[1.50,"x"],{"k":  true}]"#);
    let msg = Serializer::Json.decode(&input).expect("decodes");
    assert_eq!(
        &Serializer::Json.encode(&msg).expect("encodes")[..],
        br#"[36,1,2,{},[1.50,"x"],{"k":  true}]"#
    );
}

#[test]
fn kwargs_without_args_get_an_empty_args_placeholder() {
    let msg = Message::Event(Event {
        subscription: SubscriptionId::new(5).expect("id"),
        publication: PublicationId::new(6).expect("id"),
        details: dict! {},
        payload: crate::Payload::from_values(vec![], dict! {"a" => 1u64}),
    });
    assert_eq!(&Serializer::Json.encode(&msg).expect("encodes")[..], br#"[36,5,6,{},[],{"a":1}]"#);
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let cases: &[(Serializer, &[u8])] = &[
        (Serializer::Json, b"[48, 1, {}"),
        (Serializer::Json, b"{}"),
        (Serializer::Json, b"[]"),
        (Serializer::MsgPack, &[0x93, 0x30]),
        (Serializer::MsgPack, &[0xc1]),
        (Serializer::Cbor, &[0x83, 0x18]),
        (Serializer::Cbor, &[0xff]),
    ];
    for (serializer, bytes) in cases {
        assert!(
            serializer.decode(&Bytes::copy_from_slice(bytes)).is_err(),
            "{serializer:?} {bytes:?}"
        );
    }
}

#[test]
fn unknown_message_type_is_named() {
    let err = Serializer::Json.decode(&Bytes::from_static(b"[99, 1]")).unwrap_err();
    assert_eq!(err, DecodeError::UnknownType(99));
}

#[test]
fn wrong_field_type_names_message_and_field() {
    let err = Serializer::Json.decode(&Bytes::from_static(br#"[32, "x", {}, "t"]"#)).unwrap_err();
    assert_eq!(err.to_string(), "SUBSCRIBE.Request must be an id in [0, 2^53]");
    let err = Serializer::Json.decode(&Bytes::from_static(br#"[32, 1, {}, "t", 5]"#)).unwrap_err();
    assert_eq!(err, DecodeError::TooManyElements { message: "SUBSCRIBE" });
    let err =
        Serializer::Json.decode(&Bytes::from_static(br#"[48, 1, {}, "p", {"a": 1}]"#)).unwrap_err();
    assert_eq!(err, DecodeError::PayloadShape("Arguments must be a list"));
}

#[test]
fn request_ids_above_two_to_the_53_are_refused() {
    let err = Serializer::Json
        .decode(&Bytes::from_static(br#"[48, 9007199254740993, {}, "p"]"#))
        .unwrap_err();
    assert!(matches!(err, DecodeError::Field { field: "Request", .. }));
}

#[test]
fn deeply_nested_payloads_are_refused_when_decoded() {
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 2), "]".repeat(MAX_DEPTH + 2));
    for serializer in [Serializer::MsgPack, Serializer::Cbor] {
        let mut bytes =
            vec![if serializer == Serializer::MsgPack { 0x91 } else { 0x81 }; MAX_DEPTH + 2];
        bytes.push(if serializer == Serializer::MsgPack { 0x90 } else { 0x80 });
        assert_eq!(serializer.decode_value(&bytes), Err(DecodeError::TooDeep), "{serializer:?}");
    }
    assert_eq!(Serializer::Json.decode_value(deep.as_bytes()), Err(DecodeError::TooDeep));
}

#[test]
fn transparent_json_payload_must_be_valid_base64() {
    // Found by fuzzing: "\u0000" followed by text that is not base64 passed as binary, then
    // transcoded to a string that MessagePack peers could not accept as a payload.
    let bad = Bytes::from_static(br#"[36,1,2,{},"\u0000g6Vj<not base64>"]"#);
    assert_eq!(
        Serializer::Json.decode(&bad).unwrap_err(),
        DecodeError::PayloadShape("Arguments must be a list")
    );
    let good = Bytes::from_static(br#"[36,1,2,{},"\u0000AAEC"]"#);
    let message = Serializer::Json.decode(&good).expect("a binary payload");
    for target in Serializer::ALL {
        target.decode(&target.encode(&message).expect("encodes")).expect("decodes");
    }
}

#[test]
fn top_level_strings_starting_with_nul_stay_strings_in_json() {
    // Found by fuzzing decode_cbor: GOODBYE with a reason "\u{0}ampamp…" from a CBOR peer.
    let cbor = Bytes::from(vec![0x83, 0x06, 0xa0, 0x63, 0x00, 0x41, 0x41]);
    let message = Serializer::Cbor.decode(&cbor).expect("GOODBYE");
    let json = Serializer::Json.encode(&message).expect("encodes");
    assert_eq!(Serializer::Json.decode(&json).expect("decodes"), message);
}

#[test]
fn the_key_serde_json_reserves_is_refused_in_json_both_ways() {
    let key = "$serde_json::private::RawValue";
    let input = format!(r#"[36,1,2,{{"a":1,"{key}":[1]}}]"#);
    let refused = Serializer::Json.decode(&Bytes::from(input)).unwrap_err();
    assert!(refused.to_string().contains("is reserved"), "{refused}");
    let event = Message::Event(Event {
        subscription: SubscriptionId::new(1).unwrap(),
        publication: PublicationId::new(2).unwrap(),
        details: dict! { key => 1u64 },
        payload: Default::default(),
    });
    assert!(Serializer::MsgPack.encode(&event).is_ok());
    assert!(Serializer::Json.encode(&event).is_err());
}

/// Every MessagePack format, written by `rmp` in the width named, reads back as the value (the
/// decoder matches marker octets itself).
#[test]
fn every_msgpack_format_decodes() {
    use rmp::encode as w;
    type Writer = fn(&mut Vec<u8>);
    let cases: &[(Writer, Value)] = &[
        (|b| w::write_pfix(b, 7).unwrap(), Value::Int(7)),
        (|b| w::write_nfix(b, -3).unwrap(), Value::Int(-3)),
        (|b| w::write_nil(b).unwrap(), Value::Null),
        (|b| w::write_bool(b, false).unwrap(), Value::Bool(false)),
        (|b| w::write_bool(b, true).unwrap(), Value::Bool(true)),
        (|b| w::write_u8(b, 200).unwrap(), Value::Int(200)),
        (|b| w::write_u16(b, 60_000).unwrap(), Value::Int(60_000)),
        (|b| w::write_u32(b, 4_000_000_000).unwrap(), Value::Int(4_000_000_000)),
        (|b| w::write_u64(b, u64::MAX).unwrap(), Value::UInt(u64::MAX)),
        (|b| w::write_i8(b, -100).unwrap(), Value::Int(-100)),
        (|b| w::write_i16(b, -30_000).unwrap(), Value::Int(-30_000)),
        (|b| w::write_i32(b, -2_000_000_000).unwrap(), Value::Int(-2_000_000_000)),
        (|b| w::write_i64(b, i64::MIN).unwrap(), Value::Int(i64::MIN)),
        (|b| w::write_f32(b, 1.5).unwrap(), Value::Float(1.5)),
        (|b| w::write_f64(b, -0.25).unwrap(), Value::Float(-0.25)),
        (|b| w::write_str(b, "fix").unwrap(), Value::from("fix")),
        (|b| w::write_str(b, &"8".repeat(40)).unwrap(), Value::from("8".repeat(40))),
        (|b| w::write_str(b, &"6".repeat(300)).unwrap(), Value::from("6".repeat(300))),
        (|b| w::write_str(b, &"3".repeat(70_000)).unwrap(), Value::from("3".repeat(70_000))),
        (|b| w::write_bin(b, &[1, 2]).unwrap(), Value::Bytes(vec![1, 2])),
        (|b| w::write_bin(b, &[9; 300]).unwrap(), Value::Bytes(vec![9; 300])),
        (|b| w::write_bin(b, &[5; 70_000]).unwrap(), Value::Bytes(vec![5; 70_000])),
        (
            |b| {
                w::write_array_len(b, 16).unwrap();
                (0..16).for_each(|i| w::write_pfix(b, i).unwrap());
            },
            Value::List((0..16).map(Value::Int).collect()),
        ),
        (
            |b| {
                w::write_map_len(b, 16).unwrap();
                for i in 0..16u8 {
                    w::write_str(b, &format!("k{i:02}")).unwrap();
                    w::write_pfix(b, i).unwrap();
                }
            },
            Value::Dict(crate::Dict::from_entries(
                (0..16).map(|i| (format!("k{i:02}").into(), Value::Int(i))).collect(),
            )),
        ),
    ];
    for (write, expected) in cases {
        let mut bytes = Vec::new();
        write(&mut bytes);
        assert_eq!(Serializer::MsgPack.decode_value(&bytes).as_ref(), Ok(expected), "{bytes:x?}");
    }
    // Extensions (fixext 1 … 16, ext 8) are not part of WAMP, and 0xc1 is reserved.
    for bytes in [&[0xd4, 1, 0][..], &[0xd8, 1, 0], &[0xc7, 1, 1, 0], &[0xc1]] {
        assert!(Serializer::MsgPack.decode_value(bytes).is_err(), "{bytes:x?}");
    }
    // Each extension is stepped over by its length when it sits in a payload.
    for (marker, len) in [(0xd4, 1), (0xd5, 2), (0xd6, 4), (0xd7, 8), (0xd8, 16)] {
        let mut frame = vec![0x95, 0x30, 0x01, 0x80, 0xa1, b'p', 0x91, marker, 0x01];
        frame.extend(std::iter::repeat_n(0, len));
        assert!(Serializer::MsgPack.decode(&Bytes::from(frame)).is_ok(), "{marker:x}");
    }
}
