defmodule :telemetry do
  @moduledoc """
  Test stand-in for the hex `telemetry` package, which cannot be installed where these tests
  run. It implements the subset of the real library's API that ObjectStoreX and its tests use,
  with the same contracts:

    * `attach/4`, `attach_many/4` - `:ok`, or `{:error, :already_exists}` for a handler id in
      use
    * `detach/1` - `:ok`, or `{:error, :not_found}`
    * `execute/3` - calls every handler attached to the event, in the calling process, as
      `handler.(event, measurements, metadata, config)`; a handler that raises is detached

  It only dispatches to attached handlers: with none attached, `execute/3` does nothing, as
  with the real package. ObjectStoreX never calls it unless it has been loaded, which only
  happens when a test attaches a handler, so test files that attach nothing run the library's
  path for an absent `:telemetry`.

  Handlers live in an ETS table owned by a process started on first use, which serialises
  attaching and detaching as the real package's handler table does.
  """

  @table :telemetry_stand_in_handlers
  @server :telemetry_stand_in

  @type handler_id :: term()
  @type event_name :: [atom(), ...]
  @type handler_function :: (event_name(), map(), map(), term() -> any())

  @doc """
  Attaches `function` to `event_name` under `handler_id`.

  ## Options

  None; `config` is passed to the handler as its fourth argument.
  """
  @spec attach(handler_id(), event_name(), handler_function(), term()) ::
          :ok | {:error, :already_exists}
  def attach(handler_id, event_name, function, config),
    do: attach_many(handler_id, [event_name], function, config)

  @doc """
  Attaches `function` to every event in `event_names` under one `handler_id`.

  ## Options

  None; `config` is passed to the handler as its fourth argument.
  """
  @spec attach_many(handler_id(), [event_name()], handler_function(), term()) ::
          :ok | {:error, :already_exists}
  def attach_many(handler_id, event_names, function, config)
      when is_list(event_names) and is_function(function, 4) do
    call({:attach, handler_id, event_names, function, config})
  end

  @doc "Detaches the handler `handler_id` from every event."
  @spec detach(handler_id()) :: :ok | {:error, :not_found}
  def detach(handler_id), do: call({:detach, handler_id})

  @doc "Calls the handlers attached to `event_name`, in the calling process."
  @spec execute(event_name(), map(), map()) :: :ok
  def execute(event_name, measurements, metadata) when is_map(measurements) do
    handlers =
      if :ets.whereis(@table) == :undefined, do: [], else: :ets.lookup(@table, event_name)

    for {^event_name, id, function, config} <- handlers do
      try do
        function.(event_name, measurements, metadata, config)
      catch
        kind, reason ->
          detach(id)

          :logger.error(
            "telemetry stand-in: handler #{inspect(id)} failed and was detached: " <>
              Exception.format(kind, reason, __STACKTRACE__)
          )
      end
    end

    :ok
  end

  # A request to the table's owner, started if needed. A server that lost the race to register
  # exits at once; the request is then retried against the winner.
  defp call(request) do
    pid = Process.whereis(@server) || start_server()
    ref = Process.monitor(pid)
    send(pid, {request, self(), ref})

    receive do
      {^ref, reply} ->
        Process.demonitor(ref, [:flush])
        reply

      {:DOWN, ^ref, _, _, _} ->
        call(request)
    end
  end

  defp start_server do
    spawn(fn ->
      # Another process may have registered first; this one then leaves quietly.
      if Process.whereis(@server) != nil or not register(@server), do: exit(:normal)
      :ets.new(@table, [:named_table, :protected, :duplicate_bag, read_concurrency: true])
      serve()
    end)
  end

  defp register(name) do
    Process.register(self(), name)
  rescue
    ArgumentError -> false
  end

  defp serve do
    receive do
      {request, from, ref} ->
        send(from, {ref, handle(request)})
        serve()
    end
  end

  defp handle({:attach, id, event_names, function, config}) do
    if :ets.match_object(@table, {:_, id, :_, :_}) == [] do
      :ets.insert(@table, for(event <- event_names, do: {event, id, function, config}))
      :ok
    else
      {:error, :already_exists}
    end
  end

  defp handle({:detach, id}) do
    case :ets.match_object(@table, {:_, id, :_, :_}) do
      [] ->
        {:error, :not_found}

      _ ->
        :ets.match_delete(@table, {:_, id, :_, :_})
        :ok
    end
  end
end
