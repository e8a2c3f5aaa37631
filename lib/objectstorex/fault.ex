defmodule ObjectStoreX.Fault do
  @moduledoc """
  A store that fails on purpose, to test how an application copes with a store that fails.

  `wrap/2` returns a store that behaves exactly like the one it wraps, except where one of its
  rules applies: a call fails with a chosen `ObjectStoreX.Error`, waits, or has its body cut.
  It is a real store in native code, between the library and the wrapped store, so every
  function and stream of ObjectStoreX goes through it unchanged, and `calls/1` says what ran.

      {:ok, store} = ObjectStoreX.new(:memory)

      {:ok, faulty} =
        ObjectStoreX.Fault.wrap(store,
          fail: [op: :put_part, part: 3, reason: :timeout],
          fail: [op: :get, path: "reports/*.csv", nth: 2, reason: :not_found],
          cut_body: [after: 1_000_000, path: "big/**"],
          latency: [ms: 20, op: :head]
        )

      {:error, %ObjectStoreX.Error{reason: :timeout}} =
        ObjectStoreX.Stream.upload(chunks, faulty, "big.bin", part_size: 5_242_880)

      {:ok, calls} = ObjectStoreX.Fault.calls(faulty)
      # [%{op: :create_multipart, path: "big.bin", outcome: :ok},
      #  %{op: :put_part, path: "big.bin", part: 1, outcome: :ok}, ...,
      #  %{op: :put_part, path: "big.bin", part: 3, outcome: {:fault, :timeout}}, ...,
      #  %{op: :abort_multipart, path: "big.bin", outcome: :ok}]

  ## Operations

  Calls are named by what the wrapped store is asked to do, which is what a rule's `:op` names:

    * `:put` - a single-request write (`put/4`, and uploads of at most one part)
    * `:get` - a read with a body (`get/3`, `get_ranges/4`, `download_file/4`, every stream
      reading an object); `:head` - a metadata read (`head/3`, `get/3` with `head: true`)
    * `:list` - a listing (`list/2`, `list_with_delimiter/2`, `Stream.list_stream/2`); its path
      is the prefix listed (`""` for none)
    * `:delete` - one per object deleted (`delete/3`, `delete_many/3`)
    * `:copy`, `:rename` - their path is the source; the call's `:to` the destination
    * `:create_multipart`, `:put_part`, `:complete_multipart`, `:abort_multipart` - the steps
      of a multipart upload (`Stream.upload/4`, `upload_sink/3`, `upload_file/4`,
      `transfer/5`); parts are numbered from 1 in the order they are cut

  Paths are relative to the store's `:prefix`, as the caller wrote them.

  ## Rules

  `rules` is a list of `{kind, options}`. Every rule counts the calls it matches, in the order
  they start, and fires on the `:nth` of them and the ones after it, `:times` in all. Rules are
  independent: each counts every call it matches, delays of rules that fire add up, and the first
  failing rule that fires (in list order) decides the error. A failed call never reaches the
  wrapped store: a failed part is not sent, a failed completion leaves the upload to be aborted.

    * `{:fail, options}` - the call fails with `%ObjectStoreX.Error{reason: reason}`:
      * `:op` (required) - an operation, a list of them, or `:any`
      * `:reason` - `:generic` (default), `:not_found`, `:already_exists`,
        `:precondition_failed`, `:not_modified`, `:permission_denied`, `:unauthenticated`,
        `:not_supported`, `:invalid_range`, `:timeout`, `:network_error` or `:internal`. The
        library treats it as it treats the same error from a real store: a `:not_found` on
        `:delete` counts as deleted, as a missing object does.
      * `:retryable` - the error's `retryable` field; default `true` for `:timeout` and
        `:network_error`, else `false`
      * `:part` - only this part number of each upload (`op: :put_part` only)
      * `:message` - the error's message (default: which rule and which call)
    * `{:cut_body, options}` - the body of a GET fails once it reaches byte `:after` of the
      object; the bytes before it arrive. Counted among the GETs whose answer reaches past that
      byte. A read resumes a body that breaks (see the README's guarantees), so a cut that fires
      once is resumed past, and one that fires always (`times: :always`) surfaces as the error.
      * `:after` (required) - a byte offset of the object
      * `:reason` - default `:network_error`; `:retryable`, `:message` as for `:fail`
    * `{:latency, options}` - the call waits before it starts:
      * `:ms` (required) - milliseconds, at most 4_294_967_295
      * `:op` - as for `:fail`, default `:any`

  And for every kind:

    * `:path` - only paths matching this glob: `*` matches within a path segment, `**` across
      segments, `?` one character other than `/`
    * `:nth` - the first matching call that fires, from 1 (default 1)
    * `:times` - how many matching calls fire: a positive integer or `:always`; default 1, and
      `:always` for `:latency`

  So `fail: [op: :put, nth: 3]` fails the third put only, `fail: [op: :put, nth: 2, times: 2]`
  the second and third, and `fail: [op: :any, times: :always]` every call. Bad rules are
  refused with `:invalid_argument` naming the rule.

  ## What changes besides the rules

  Nothing, with one exception: a wrapped `:memory` store uploads in parts, as network stores
  do, rather than in one request, so that part rules apply to it.
  """

  alias ObjectStoreX.{Args, Call, Error, Native, Store}

  @ops [
    :put,
    :get,
    :head,
    :list,
    :delete,
    :copy,
    :rename,
    :create_multipart,
    :put_part,
    :complete_multipart,
    :abort_multipart
  ]

  @reasons [
    :generic,
    :not_found,
    :already_exists,
    :precondition_failed,
    :not_modified,
    :permission_denied,
    :unauthenticated,
    :not_supported,
    :invalid_range,
    :timeout,
    :network_error,
    :internal
  ]

  @common [:path, :nth, :times]
  @allowed %{
    fail: [:op, :reason, :retryable, :part, :message | @common],
    cut_body: [:after, :reason, :retryable, :message | @common],
    latency: [:ms, :op | @common]
  }
  @defaults %{
    fail: [reason: :generic, nth: 1, times: 1],
    cut_body: [reason: :network_error, nth: 1, times: 1],
    latency: [op: :any, nth: 1, times: :always]
  }

  @max_u64 18_446_744_073_709_551_615

  @typedoc "An operation of the wrapped store; see \"Operations\"."
  @type op ::
          :put
          | :get
          | :head
          | :list
          | :delete
          | :copy
          | :rename
          | :create_multipart
          | :put_part
          | :complete_multipart
          | :abort_multipart

  @type rule :: {:fail | :cut_body | :latency, keyword()}

  @typedoc """
  One call the store saw. `:part` is set on `:put_part` calls, `:to` on `:copy` and `:rename`.
  The outcome is `:ok`, `{:error, reason}` (the wrapped store failed), `{:fault, reason}` (a
  rule failed it, or cut its body), `:pending` (still running) or `:cancelled` (its caller went
  away before it ended).
  """
  @type call :: %{
          required(:op) => op(),
          required(:path) => String.t(),
          required(:outcome) =>
            :ok | :pending | :cancelled | {:error, Error.reason()} | {:fault, Error.reason()},
          optional(:part) => pos_integer(),
          optional(:to) => String.t()
        }

  @doc """
  Wraps `store` in a store that applies `rules`; see the module documentation.

  The new store has the same backend, bucket, root and prefix; the wrapped one is unchanged
  and can still be used directly (to check what a failed call left behind). Wrapping a fault
  store again works: each layer has its own rules and record.

  ## Options

  None; `rules` is described in "Rules" in the module documentation.
  """
  @spec wrap(Store.t(), [rule()]) :: {:ok, Store.t()} | {:error, Error.t()}
  def wrap(store, rules) do
    with {:ok, resource} <- Args.store(store),
         {:ok, specs} <- rules(rules) do
      with {:ok, {wrapped, fault}} <- Call.now(fn -> Native.fault_wrap(resource, specs) end),
           do: {:ok, %Store{store | resource: wrapped, fault: fault}}
    end
  end

  @doc """
  Like `wrap/2`, but returns the store or raises `ObjectStoreX.Error`.

  ## Options

  None.
  """
  @spec wrap!(Store.t(), [rule()]) :: Store.t()
  def wrap!(store, rules) do
    case wrap(store, rules) do
      {:ok, store} -> store
      {:error, error} -> raise error
    end
  end

  @doc """
  Every call the fault store has seen so far, in the order the calls started (see `t:call/0`).

      {:ok, calls} = ObjectStoreX.Fault.calls(store)
      assert Enum.count(calls, &(&1.op == :get)) == 2
      assert %{op: :abort_multipart, outcome: :ok} = List.last(calls)

  ## Options

  None.
  """
  @spec calls(Store.t()) :: {:ok, [call()]} | {:error, Error.t()}
  def calls(%Store{fault: fault}) when is_reference(fault) do
    if Native.fault_valid(fault),
      do: {:ok, Enum.map(Native.fault_calls(fault), &call/1)},
      else: not_fault_store()
  end

  def calls(_other), do: not_fault_store()

  @doc """
  Like `calls/1`, but returns the list or raises `ObjectStoreX.Error`.

  ## Options

  None.
  """
  @spec calls!(Store.t()) :: [call()]
  def calls!(store) do
    case calls(store) do
      {:ok, calls} -> calls
      {:error, error} -> raise error
    end
  end

  defp not_fault_store,
    do: Error.invalid("expected a store built by ObjectStoreX.Fault.wrap/2 on this node")

  defp call({op, path, to, part, kind, reason}) do
    outcome = if reason, do: {kind, reason}, else: kind

    %{op: op, path: path, outcome: outcome}
    |> put_set(:part, part)
    |> put_set(:to, to)
  end

  defp put_set(map, _key, nil), do: map
  defp put_set(map, key, value), do: Map.put(map, key, value)

  # ---------------------------------------------------------------------------------------------
  # Rules

  defp rules(rules) do
    if is_list(rules) and Args.proper_list?(rules) do
      rules
      |> Enum.with_index(1)
      |> Args.map_all(fn {rule, index} -> rule(rule, index) end)
    else
      Error.invalid(
        "rules must be a list of {:fail | :cut_body | :latency, options}, got: #{Args.brief(rules)}"
      )
    end
  end

  defp rule({kind, opts} = rule, index) when is_map_key(@allowed, kind) do
    with {:ok, opts} <- Args.opts(opts, @allowed[kind], @defaults[kind]),
         {:ok, spec} <- spec(kind, opts) do
      {:ok, spec}
    end
    |> name_rule(rule, index)
  end

  defp rule(rule, index) do
    name_rule(
      Error.invalid("must be {:fail | :cut_body | :latency, options}"),
      rule,
      index
    )
  end

  defp name_rule({:ok, _} = ok, _rule, _index), do: ok

  defp name_rule({:error, %Error{message: message} = e}, rule, index),
    do: {:error, %Error{e | message: "fault rule #{index} #{Args.brief(rule)}: #{message}"}}

  defp spec(kind, opts) do
    with {:ok, ops} <- ops(kind, opts),
         {:ok, glob} <- glob(opts[:path]),
         {:ok, nth} <- count(":nth", opts.nth),
         {:ok, times} <- times(opts.times),
         {:ok, part} <- part(opts[:part], ops),
         {:ok, reason} <- reason(Map.get(opts, :reason, :generic)),
         {:ok, retryable} <-
           Args.boolean(":retryable", Map.get(opts, :retryable, Error.retryable?(reason))),
         {:ok, message} <- Args.optional_string(":message", opts[:message]),
         {:ok, at} <- required_integer(kind == :cut_body, ":after", opts[:after], @max_u64),
         {:ok, ms} <- required_integer(kind == :latency, ":ms", opts[:ms], Args.max_timeout()) do
      {:ok,
       %{
         action: Atom.to_string(kind),
         ops: Enum.map(ops, &Atom.to_string/1),
         glob: glob,
         part: part,
         nth: nth,
         times: times,
         reason: Atom.to_string(reason),
         retryable: retryable,
         message: message,
         at: at,
         ms: ms
       }}
    end
  end

  defp ops(:cut_body, _opts), do: {:ok, [:get]}
  defp ops(:fail, opts) when not is_map_key(opts, :op), do: Error.invalid(":op is required")
  defp ops(_kind, %{op: :any}), do: {:ok, []}
  defp ops(_kind, %{op: op}) when op in @ops, do: {:ok, [op]}

  defp ops(_kind, %{op: [_ | _] = ops}) do
    if Args.proper_list?(ops) and Enum.all?(ops, &(&1 in @ops)),
      do: {:ok, Enum.uniq(ops)},
      else: bad_op(ops)
  end

  defp ops(_kind, %{op: op}), do: bad_op(op)

  defp bad_op(op),
    do:
      Error.invalid(
        ":op must be :any, one of #{Enum.map_join(@ops, ", ", &inspect/1)}, or a list of them, got: #{Args.brief(op)}"
      )

  defp glob(nil), do: {:ok, nil}

  # A bad glob is a bad rule: :invalid_argument, as for every other option of a rule.
  defp glob(glob) do
    case Args.path(":path", glob) do
      {:error, %Error{} = e} -> {:error, %Error{e | reason: :invalid_argument}}
      ok -> ok
    end
  end

  defp count(_name, n) when is_integer(n) and n > 0 and n <= @max_u64, do: {:ok, n}

  defp count(name, other),
    do: Error.invalid("#{name} must be a positive integer, got: #{Args.brief(other)}")

  defp times(:always), do: {:ok, nil}

  defp times(n) when is_integer(n) and n > 0 and n <= @max_u64, do: {:ok, n}

  defp times(other),
    do: Error.invalid(":times must be a positive integer or :always, got: #{Args.brief(other)}")

  defp part(nil, _ops), do: {:ok, nil}

  defp part(part, [:put_part]), do: count(":part", part)

  defp part(_part, _ops), do: Error.invalid(":part applies only to op: :put_part")

  defp reason(reason) when reason in @reasons, do: {:ok, reason}

  defp reason(other),
    do:
      Error.invalid(
        ":reason must be one of #{Enum.map_join(@reasons, ", ", &inspect/1)}, got: #{Args.brief(other)}"
      )

  defp required_integer(false, _name, _value, _max), do: {:ok, 0}
  defp required_integer(true, name, nil, _max), do: Error.invalid("#{name} is required")

  defp required_integer(true, _name, n, max) when is_integer(n) and n >= 0 and n <= max,
    do: {:ok, n}

  defp required_integer(true, name, other, max),
    do:
      Error.invalid(
        "#{name} must be a non-negative integer, at most #{max}, got: #{Args.brief(other)}"
      )
end
