//! The `select!` and `select_biased!` macros: crossbeam-channel's grammar over [`Select`].
//!
//! [`Select`]: crate::Select

/// Waits on several channel operations and runs the arm of the one selected, with
/// crossbeam-channel's grammar:
///
/// ```text
/// select! {
///     recv(r) -> res => body,           // res: Result<T, RecvError>
///     send(s, msg) -> res => body,      // res: Result<(), SendError<T>>
///     default => body,                  // none ready now (optional; also `default()`)
///     default(timeout) => body,         // none ready within `timeout` (or this)
/// }
/// ```
///
/// Bodies are blocks (the comma after them optional) or expressions (followed by a comma,
/// except the last). `r` is a [`Receiver`](crate::Receiver) or a timer ([`after`](crate::after),
/// [`tick`](crate::tick), [`never`](crate::never)), `s` a [`Sender`](crate::Sender), of any
/// flavor, codec or type; each is borrowed `&mut` for the select (so a `let mut` binding, or a
/// `&mut` reference, or a temporary such as `after(d)`), and one endpoint cannot appear in two
/// arms. The message of a send arm is evaluated only if that arm is selected. Without a
/// `default`, waits until an operation is ready. When several are ready, one is picked at
/// random ([`select_biased!`](crate::select_biased!): the first).
///
/// Receives complete at selection; a send is checked at selection and sent in its arm (on
/// MPMC, where another sender can take the room first, the send then waits for room). See
/// [`Select`](crate::Select) for the rest.
///
/// ```
/// use std::time::Duration;
/// let (a, b) = (shmbus::channel::<u32>().in_process()?, shmbus::channel::<u32>().mpmc().in_process()?);
/// let (mut tx_a, mut rx_a) = (a.sender()?, a.receiver()?);
/// let (mut tx_b, mut rx_b) = (b.sender()?, b.receiver()?);
/// tx_a.send(10)?;
///
/// // Both ready: either arm may run.
/// shmbus::select! {
///     recv(rx_a) -> msg => assert_eq!(msg?, 10),
///     send(tx_b, 20) -> res => {
///         res?;
///         assert_eq!(rx_b.recv()?, 20);
///     }
/// }
///
/// // Nothing ready within 10 ms.
/// let mut empty = shmbus::channel::<u32>().in_process()?.receiver()?;
/// let timed_out = shmbus::select! {
///     recv(empty) -> _ => false,
///     default(Duration::from_millis(10)) => true,
/// };
/// assert!(timed_out);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__select_internal!(@parse new [] [] $($tokens)*)
    };
}

/// [`select!`](crate::select!), but when several operations are ready, the first in the list
/// is selected.
///
/// ```
/// let ch = shmbus::channel::<u8>().in_process()?;
/// let (mut tx, mut rx) = (ch.sender()?, ch.receiver()?);
/// tx.send(1)?;
/// let first = shmbus::select_biased! {
///     recv(rx) -> _ => true,
///     recv(shmbus::after(std::time::Duration::ZERO)) -> _ => false,
/// };
/// assert!(first);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! select_biased {
    ($($tokens:tt)*) => {
        $crate::__select_internal!(@parse new_biased [] [] $($tokens)*)
    };
}

/// The parser and code generator behind [`select!`](crate::select!). Not public API.
///
/// Each arm is normalised to `(kind var idx (target) (msg) (res) body)`, where `var` and
/// `idx` are identifiers made in the step that parsed the arm (so each arm's are distinct).
#[doc(hidden)]
#[macro_export]
macro_rules! __select_internal {
    // ---- recv ----
    (@parse $b:tt [$($ops:tt)*] $def:tt
        recv($r:expr $(,)?) -> $res:pat => $body:block, $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b
            [$($ops)* (recv __shmbus_var __shmbus_idx ($r) () ($res) $body)] $def $($tail)*)
    };
    (@parse $b:tt [$($ops:tt)*] $def:tt
        recv($r:expr $(,)?) -> $res:pat => $body:block $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b
            [$($ops)* (recv __shmbus_var __shmbus_idx ($r) () ($res) $body)] $def $($tail)*)
    };
    (@parse $b:tt [$($ops:tt)*] $def:tt
        recv($r:expr $(,)?) -> $res:pat => $body:expr, $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b
            [$($ops)* (recv __shmbus_var __shmbus_idx ($r) () ($res) $body)] $def $($tail)*)
    };
    (@parse $b:tt [$($ops:tt)*] $def:tt
        recv($r:expr $(,)?) -> $res:pat => $body:expr) => {
        $crate::__select_internal!(@parse $b
            [$($ops)* (recv __shmbus_var __shmbus_idx ($r) () ($res) $body)] $def)
    };
    // ---- send ----
    (@parse $b:tt [$($ops:tt)*] $def:tt
        send($s:expr, $m:expr $(,)?) -> $res:pat => $body:block, $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b
            [$($ops)* (send __shmbus_var __shmbus_idx ($s) ($m) ($res) $body)] $def $($tail)*)
    };
    (@parse $b:tt [$($ops:tt)*] $def:tt
        send($s:expr, $m:expr $(,)?) -> $res:pat => $body:block $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b
            [$($ops)* (send __shmbus_var __shmbus_idx ($s) ($m) ($res) $body)] $def $($tail)*)
    };
    (@parse $b:tt [$($ops:tt)*] $def:tt
        send($s:expr, $m:expr $(,)?) -> $res:pat => $body:expr, $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b
            [$($ops)* (send __shmbus_var __shmbus_idx ($s) ($m) ($res) $body)] $def $($tail)*)
    };
    (@parse $b:tt [$($ops:tt)*] $def:tt
        send($s:expr, $m:expr $(,)?) -> $res:pat => $body:expr) => {
        $crate::__select_internal!(@parse $b
            [$($ops)* (send __shmbus_var __shmbus_idx ($s) ($m) ($res) $body)] $def)
    };
    // ---- default ----
    (@parse $b:tt $ops:tt [] default => $body:block, $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b $ops [() $body] $($tail)*)
    };
    (@parse $b:tt [$($ops:tt)*] $def:tt
        send($s:expr, $m:expr $(,)?) -> $res:pat => $body:expr) => {
        $crate::__select_internal!(@parse $b
            [$($ops)* (send __shmbus_var __shmbus_idx ($s) ($m) ($res) $body)] $def)
    };
    // ---- default ----
    (@parse $b:tt $ops:tt [] default => $body:block $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b $ops [() $body] $($tail)*)
    };
    (@parse $b:tt $ops:tt [] default => $body:expr, $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b $ops [() $body] $($tail)*)
    };
    (@parse $b:tt $ops:tt [] default => $body:expr) => {
        $crate::__select_internal!(@parse $b $ops [() $body])
    };
    (@parse $b:tt $ops:tt [] default() => $body:block, $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b $ops [() $body] $($tail)*)
    };
    (@parse $b:tt $ops:tt [] default => $body:expr) => {
        $crate::__select_internal!(@parse $b $ops [() $body])
    };
    (@parse $b:tt $ops:tt [] default() => $body:block $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b $ops [() $body] $($tail)*)
    };
    (@parse $b:tt $ops:tt [] default() => $body:expr, $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b $ops [() $body] $($tail)*)
    };
    (@parse $b:tt $ops:tt [] default() => $body:expr) => {
        $crate::__select_internal!(@parse $b $ops [() $body])
    };
    (@parse $b:tt $ops:tt [] default($t:expr $(,)?) => $body:block, $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b $ops [($t) $body] $($tail)*)
    };
    (@parse $b:tt $ops:tt [] default() => $body:expr) => {
        $crate::__select_internal!(@parse $b $ops [() $body])
    };
    (@parse $b:tt $ops:tt [] default($t:expr $(,)?) => $body:block $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b $ops [($t) $body] $($tail)*)
    };
    (@parse $b:tt $ops:tt [] default($t:expr $(,)?) => $body:expr, $($tail:tt)*) => {
        $crate::__select_internal!(@parse $b $ops [($t) $body] $($tail)*)
    };
    (@parse $b:tt $ops:tt [] default($t:expr $(,)?) => $body:expr) => {
        $crate::__select_internal!(@parse $b $ops [($t) $body])
    };
    (@parse $b:tt $ops:tt [$($def:tt)+] default $($tail:tt)*) => {
        ::core::compile_error!("there can be only one `default` case in a `select!` block")
    };
    // ---- done: generate ----
    (@parse $b:tt $ops:tt $def:tt) => {
        $crate::__select_internal!(@gen $b $ops $def)
    };
    (@parse $b:tt $ops:tt $def:tt $($tail:tt)+) => {
        ::core::compile_error!(
            "expected `recv(r) -> res => body`, `send(s, msg) -> res => body`, \
             `default => body` or `default(timeout) => body` in `select!`"
        )
    };

    (@gen $b:tt [$(($kind:ident $var:ident $idx:ident ($target:expr) ($($msg:expr)?) ($res:pat) $body:tt))*] $def:tt) => {{
        $( let $var = &mut $target; )*
        let mut __shmbus_sel = $crate::Select::$b();
        $( let $idx = __shmbus_sel.$kind(&mut *$var); )*
        $crate::__select_internal!(@wait __shmbus_sel __shmbus_op $def
            [$(($kind $var $idx ($($msg)?) ($res) $body))*])
    }};

    (@wait $sel:ident $op:ident [] $arms:tt) => {{
        let $op = $sel.select();
        $crate::__select_internal!(@dispatch $op $arms)
    }};
    (@wait $sel:ident $op:ident [() $default:tt] $arms:tt) => {
        match $sel.try_select() {
            ::core::result::Result::Ok($op) => $crate::__select_internal!(@dispatch $op $arms),
            ::core::result::Result::Err(_) => $default,
        }
    };
    (@wait $sel:ident $op:ident [($t:expr) $default:tt] $arms:tt) => {
        match $sel.select_timeout($t) {
            ::core::result::Result::Ok($op) => $crate::__select_internal!(@dispatch $op $arms),
            ::core::result::Result::Err(_) => $default,
        }
    };

    (@dispatch $op:ident [$(($kind:ident $var:ident $idx:ident ($($msg:expr)?) ($res:pat) $body:tt))*]) => {
        match $op.index() {
            $(
                __shmbus_i if __shmbus_i == $idx => {
                    #[allow(unused_variables)]
                    let $res = $op.$kind(&mut *$var $(, $msg)?);
                    $body
                }
            )*
            _ => ::core::unreachable!("select! selected an operation it does not have"),
        }
    };
}
